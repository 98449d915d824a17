//! Fuzz target: `gridcast_protocol::fuzzing::registry` (the checks the test suite runs too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gridcast_protocol::fuzzing::registry(data));
