//! CMS SignedData and RFC 3161 tokens (the /Contents of signatures and document time-stamps).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = elicense::seal::verify::check_cms(data, &[0u8; 32]);
    let _ = elicense::seal::verify::inspect_timestamp(data, &[0u8; 32]);
});
