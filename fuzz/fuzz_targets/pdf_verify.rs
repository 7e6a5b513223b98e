//! The seal verifier on arbitrary bytes (what POST /v1/seals/verify receives).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let trust = elicense::seal::verify::Trust::default();
    let _ = elicense::seal::verify::verify_document(data, &trust, 1_800_000_000);
});
