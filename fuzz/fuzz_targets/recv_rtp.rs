//! cargo-fuzz target `recv_rtp`: the body is `tandem::fuzzing::recv_rtp` (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem::fuzzing::recv_rtp(data));
