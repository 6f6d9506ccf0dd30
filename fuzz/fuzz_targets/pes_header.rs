//! cargo-fuzz target `pes_header`: the body is `tandem::fuzzing::pes_header` (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem::fuzzing::pes_header(data));
