//! cargo-fuzz target `index_file`: the body is `tandem::fuzzing::index_file` (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem::fuzzing::index_file(data));
