//! JSON request bodies: issuance and amendment requests, show-code requests, and license type
//! definitions (compiled as JSON Schema, then used to validate fields).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<elicense::license::IssueRequest>(data);
    let _ = serde_json::from_slice::<elicense::license::service::Amendment>(data);
    let _ = serde_json::from_slice::<elicense::present::ShowCodeRequest>(data);
    if let Ok(def) = serde_json::from_slice::<elicense::license::types::TypeDefinition>(data)
        && let Ok(t) = elicense::license::types::LicenseType::compile(def, false)
    {
        let _ = t.validate_fields(&serde_json::json!({"a": 1, "b": "x", "c": [1, 2]}));
    }
});
