//! cargo-fuzz target `psi_section`: the body is `tandem::fuzzing::psi_section` (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem::fuzzing::psi_section(data));
