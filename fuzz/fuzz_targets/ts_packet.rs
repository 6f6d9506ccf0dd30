//! cargo-fuzz target `ts_packet`: the body is `tandem::fuzzing::ts_packet` (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem::fuzzing::ts_packet(data));
