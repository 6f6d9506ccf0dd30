//! cargo-fuzz target `wire_message_mac`: the body is `tandem::fuzzing::wire_message_mac` (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem::fuzzing::wire_message_mac(data));
