//! Show codes (EL1:...) through the offline check, and QR images through the decoder.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = elicense::present::check(s, &elicense::present::Trust::default(), 1_800_000_000);
    }
    if data.starts_with(b"\x89PNG") {
        let _ = elicense::present::qr::decode_png(data);
    }
});
