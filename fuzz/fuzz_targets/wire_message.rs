//! cargo-fuzz target `wire_message`: the body is `tandem::fuzzing::wire_message` (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem::fuzzing::wire_message(data));
