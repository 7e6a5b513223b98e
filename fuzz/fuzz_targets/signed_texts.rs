//! Receipts (ELR1), trust lists (ELT1) and status lists (ELS1).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = elicense::verify::receipt::verify(s, &[]);
        let _ = elicense::verify::trust::open_self_pinned(s);
        let _ = elicense::present::status_list::open(s, &[]);
    }
});
