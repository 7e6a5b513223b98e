//! The PDF reader: cross-reference chain, catalog, page tree, page boxes, every object.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pdf) = elicense::pdf::Pdf::open(data) else {
        return;
    };
    let _ = pdf.catalog();
    if let Ok(pages) = pdf.pages() {
        for p in pages.iter().take(50) {
            let _ = pdf.page_box(*p);
        }
    }
    let ids: Vec<u32> = pdf.object_ids().take(500).collect();
    for id in ids {
        if let Ok(lopdf::Object::Stream(s)) = pdf.get((id, 0)) {
            let _ = pdf.stream_data(&s);
        }
    }
});
