//! Incremental updates: new and changed objects appended after the original bytes, with a
//! cross-reference section of the same kind as the newest one in the file, so earlier signatures
//! keep covering exactly the bytes they covered.

use super::{Pdf, Source};
use crate::error::{Error, Result};
use lopdf::{Dictionary, Object, ObjectId, Stream, Writer};
use std::collections::BTreeMap;

/// The objects one revision adds or replaces.
#[derive(Default)]
pub struct Update {
    objects: BTreeMap<u32, (u16, Object)>,
    next_id: u32,
}

/// An update serialised, ready to append after the original file.
pub struct Written {
    /// The bytes to append (they start at the original length).
    pub bytes: Vec<u8>,
    /// Where each written object starts, relative to `bytes`.
    pub offsets: BTreeMap<u32, usize>,
}

fn w(e: std::io::Error) -> Error {
    Error::internal(format!("writing a PDF object: {e}"))
}

impl Update {
    pub fn new<S: Source + ?Sized>(pdf: &Pdf<'_, S>) -> Self {
        Update {
            objects: BTreeMap::new(),
            next_id: pdf.size().max(1),
        }
    }

    /// A fresh object number.
    pub fn alloc(&mut self) -> ObjectId {
        let id = (self.next_id, 0);
        self.next_id += 1;
        id
    }

    /// Adds or replaces an object.
    pub fn set(&mut self, id: ObjectId, o: impl Into<Object>) {
        self.objects.insert(id.0, (id.1, o.into()));
    }

    /// Adds a new object and returns its id.
    pub fn add(&mut self, o: impl Into<Object>) -> ObjectId {
        let id = self.alloc();
        self.set(id, o);
        id
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Object> {
        self.objects.get_mut(&id).map(|(_, o)| o)
    }

    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.objects.keys().copied()
    }

    /// Serialises the objects and a cross-reference section chained to the file's newest one.
    pub fn write<S: Source + ?Sized>(mut self, pdf: &Pdf<'_, S>) -> Result<Written> {
        let base = pdf.len();
        let last = pdf.read(base.saturating_sub(1), 1)?;
        let mut out = Vec::with_capacity(4096);
        if !matches!(last.as_slice(), [b'\n'] | [b'\r']) {
            out.push(b'\n');
        }
        let xref_stream_id = if pdf.uses_xref_stream() {
            Some(self.alloc())
        } else {
            None
        };
        let size = self.next_id;
        let mut offsets = BTreeMap::new();
        for (id, (generation, o)) in &self.objects {
            offsets.insert(*id, out.len());
            out.extend_from_slice(format!("{id} {generation} obj\n").as_bytes());
            Writer::write_object(&mut out, o).map_err(w)?;
            out.extend_from_slice(b"\nendobj\n");
        }
        let mut trailer = Dictionary::new();
        for key in [&b"Root"[..], b"Info", b"ID"] {
            if let Ok(v) = pdf.trailer.get(key) {
                trailer.set(key.to_vec(), v.clone());
            }
        }
        trailer.set("Size", i64::from(size));
        trailer.set("Prev", pdf.startxref() as i64);
        let xref_at = out.len() as u64 + base;
        if let Some(xid) = xref_stream_id {
            // Entries: type 1, 4-byte offset (8 when the file is that big), 2-byte generation.
            let ow: usize = if xref_at + out.len() as u64 > u32::MAX as u64 {
                8
            } else {
                4
            };
            offsets.insert(xid.0, out.len());
            let mut rows = Vec::new();
            let mut index = Vec::new();
            let all: Vec<(u32, u16, u64)> = self
                .objects
                .iter()
                .map(|(id, (g, _))| (*id, *g, base + offsets.get(id).copied().unwrap_or(0) as u64))
                .chain(std::iter::once((xid.0, 0, xref_at)))
                .collect();
            for run in runs(all.iter().map(|e| e.0)) {
                index.push(Object::Integer(i64::from(run.0)));
                index.push(Object::Integer(i64::from(run.1)));
            }
            for (_, g, off) in &all {
                rows.push(1u8);
                rows.extend_from_slice(off.to_be_bytes().get(8 - ow..).unwrap_or_default());
                rows.extend_from_slice(&g.to_be_bytes());
            }
            let mut d = trailer;
            d.set("Type", Object::Name(b"XRef".to_vec()));
            d.set(
                "W",
                Object::Array(vec![1.into(), (ow as i64).into(), 2.into()]),
            );
            d.set("Index", Object::Array(index));
            let s = Stream::new(d, rows).with_compression(false);
            out.extend_from_slice(format!("{} 0 obj\n", xid.0).as_bytes());
            Writer::write_object(&mut out, &Object::Stream(s)).map_err(w)?;
            out.extend_from_slice(b"\nendobj\n");
        } else {
            out.extend_from_slice(b"xref\n");
            let ids: Vec<u32> = self.objects.keys().copied().collect();
            for (start, n) in runs(ids.iter().copied()) {
                out.extend_from_slice(format!("{start} {n}\n").as_bytes());
                for id in start..start + n {
                    let off = base + offsets.get(&id).copied().unwrap_or(0) as u64;
                    let g = self.objects.get(&id).map(|e| e.0).unwrap_or(0);
                    out.extend_from_slice(format!("{off:010} {g:05} n\r\n").as_bytes());
                }
            }
            out.extend_from_slice(b"trailer\n");
            Writer::write_object(&mut out, &Object::Dictionary(trailer)).map_err(w)?;
            out.push(b'\n');
        }
        out.extend_from_slice(format!("startxref\n{xref_at}\n%%EOF\n").as_bytes());
        self.objects.clear();
        Ok(Written {
            bytes: out,
            offsets,
        })
    }
}

/// Contiguous runs of sorted ids: (first, count).
fn runs(ids: impl Iterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for id in ids {
        match out.last_mut() {
            Some((s, n)) if *s + *n == id => *n += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}
