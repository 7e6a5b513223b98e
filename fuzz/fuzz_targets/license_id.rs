//! GB/T 36904 license identifiers and unified social credit codes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(id) = elicense::license::id::LicenseId::parse(s) {
            let _ = id.to_string();
        }
        let _ = elicense::license::credit_code::validate(s);
    }
});
