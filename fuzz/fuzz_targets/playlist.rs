//! cargo-fuzz target `playlist`: the body is `tandem::fuzzing::playlist` (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem::fuzzing::playlist(data));
