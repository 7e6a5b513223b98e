//! Reading PDFs without loading them: the cross-reference chain, then only the objects asked for.
//!
//! A sealed document can be a 100 MB scan. Sealing needs the trailer, the catalog, one page and
//! the form; verifying needs the signature dictionaries and the objects each revision changed. So
//! the file stays where it is (a [`Source`] reads byte windows from it) and every read is bounded:
//! object count, nesting depth, object and stream sizes, page-tree depth, reference chains.

pub mod parse;
pub mod write;

use crate::error::{Error, Result};
use lopdf::{Dictionary, Object, ObjectId, Stream};
use parse::{Cursor, MAX_DEPTH, ParseError};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The most objects a document may declare.
pub const MAX_OBJECTS: u64 = 1_000_000;
/// The largest single object (not stream data) we parse.
const MAX_OBJECT_BYTES: usize = 8 << 20;
/// The largest decoded stream we hold (object and cross-reference streams, page contents).
pub const MAX_STREAM_BYTES: usize = 64 << 20;
/// The most cross-reference sections (revisions) we follow.
const MAX_SECTIONS: usize = 10_000;

/// Random access to the bytes of a PDF.
pub trait Source: Send + Sync {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize>;
}

impl Source for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(<[u8]>::len(self));
        let n = buf.len().min(<[u8]>::len(self) - start);
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), self.get(start..start + n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }
}

impl Source for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.as_slice().read_at(offset, buf)
    }
}

/// A file on disk, read with positional reads (no shared cursor).
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

impl FileSource {
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::bad_request(format!("cannot open {}: {e}", path.display())))?;
        let len = file
            .metadata()
            .map_err(|e| Error::internal(format!("stat {}: {e}", path.display())))?
            .len();
        Ok(FileSource { file, len })
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            let Some(rest) = buf.get_mut(done..) else {
                break;
            };
            match self.file.read_at(rest, offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Free,
    /// At a byte offset, with its generation.
    InFile {
        offset: u64,
        generation: u16,
    },
    /// Inside an object stream, at an index.
    InStream {
        stream: u32,
        index: u32,
    },
}

/// One cross-reference section: one revision of the file.
#[derive(Debug, Clone)]
pub struct Section {
    /// Where the section starts (the `startxref` value that points at it).
    pub offset: u64,
    /// True for a cross-reference stream.
    pub is_stream: bool,
    /// The objects this revision defines (or frees).
    pub entries: Vec<(u32, Entry)>,
    pub trailer: Dictionary,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::BadPdf {
        reason: reason.into(),
    }
}

fn limit(reason: impl Into<String>) -> Error {
    Error::PdfLimit {
        reason: reason.into(),
    }
}

fn io(e: std::io::Error) -> Error {
    Error::internal(format!("reading the PDF: {e}"))
}

struct ObjStm {
    data: Vec<u8>,
    first: usize,
    offsets: Vec<(u32, usize)>,
}

/// An open PDF: its cross-reference chain and a way to fetch objects.
pub struct Pdf<'s, S: Source + ?Sized> {
    src: &'s S,
    /// Newest first.
    pub sections: Vec<Section>,
    /// The merged table: newest definition of each object.
    xref: HashMap<u32, Entry>,
    pub trailer: Dictionary,
    objstm: Mutex<HashMap<u32, Arc<ObjStm>>>,
}

impl<'s, S: Source + ?Sized> Pdf<'s, S> {
    /// Reads the cross-reference chain. Refuses encrypted documents.
    pub fn open(src: &'s S) -> Result<Self> {
        let len = src.len();
        if len < 32 {
            return Err(bad("the file is too short to be a PDF"));
        }
        let mut head = [0u8; 8];
        src.read_at(0, &mut head).map_err(io)?;
        let header_at = if head.starts_with(b"%PDF-") {
            0
        } else {
            let mut first = vec![0u8; 1024.min(len as usize)];
            src.read_at(0, &mut first).map_err(io)?;
            find(&first, b"%PDF-").ok_or_else(|| bad("no %PDF- header"))?
        };
        if header_at != 0 {
            return Err(bad("bytes before the %PDF- header are not supported"));
        }
        let tail_len = 2048.min(len);
        let mut tail = vec![0u8; tail_len as usize];
        src.read_at(len - tail_len, &mut tail).map_err(io)?;
        let at = rfind(&tail, b"startxref").ok_or_else(|| bad("no startxref (truncated file?)"))?;
        let mut c = Cursor::new(tail.get(at + 9..).unwrap_or_default(), false);
        let start = c
            .unsigned()
            .map_err(|_| bad("startxref is not followed by an offset"))?;
        let mut pdf = Pdf {
            src,
            sections: Vec::new(),
            xref: HashMap::new(),
            trailer: Dictionary::new(),
            objstm: Mutex::new(HashMap::new()),
        };
        let mut seen = HashSet::new();
        let mut next = Some(start);
        let mut total = 0usize;
        while let Some(off) = next {
            if !seen.insert(off) {
                return Err(bad("the cross-reference chain loops"));
            }
            if pdf.sections.len() >= MAX_SECTIONS {
                return Err(limit("too many revisions"));
            }
            let mut section = pdf.read_section(off)?;
            if let Ok(Object::Integer(x)) = section.trailer.get(b"XRefStm") {
                let x = u64::try_from(*x).map_err(|_| bad("bad /XRefStm"))?;
                let hybrid = pdf.read_section(x)?;
                let known: HashSet<u32> = section.entries.iter().map(|e| e.0).collect();
                section
                    .entries
                    .extend(hybrid.entries.into_iter().filter(|e| !known.contains(&e.0)));
            }
            total += section.entries.len();
            if total as u64 > MAX_OBJECTS {
                return Err(limit(format!("more than {MAX_OBJECTS} objects")));
            }
            next = match section.trailer.get(b"Prev") {
                Ok(Object::Integer(p)) => {
                    Some(u64::try_from(*p).map_err(|_| bad("bad /Prev offset"))?)
                }
                _ => None,
            };
            pdf.sections.push(section);
        }
        for s in pdf.sections.iter().rev() {
            for (id, e) in &s.entries {
                pdf.xref.insert(*id, *e);
            }
        }
        pdf.trailer = pdf
            .sections
            .first()
            .map(|s| s.trailer.clone())
            .unwrap_or_default();
        if pdf.trailer.has(b"Encrypt") {
            return Err(Error::EncryptedPdf);
        }
        match pdf.trailer.get(b"Size") {
            Ok(Object::Integer(n)) if *n >= 0 && (*n as u64) <= MAX_OBJECTS => {}
            Ok(Object::Integer(_)) => {
                return Err(limit(format!("/Size above {MAX_OBJECTS} objects")));
            }
            _ => return Err(bad("the trailer has no /Size")),
        }
        if !matches!(pdf.trailer.get(b"Root"), Ok(Object::Reference(_))) {
            return Err(bad("the trailer has no /Root"));
        }
        Ok(pdf)
    }

    pub fn source(&self) -> &'s S {
        self.src
    }

    /// The file length.
    pub fn len(&self) -> u64 {
        self.src.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The highest object number in use plus one (the trailer's /Size).
    pub fn size(&self) -> u32 {
        match self.trailer.get(b"Size") {
            Ok(Object::Integer(n)) => u32::try_from(*n).unwrap_or(0),
            _ => 0,
        }
    }

    /// True when the newest revision uses a cross-reference stream.
    pub fn uses_xref_stream(&self) -> bool {
        self.sections.first().is_some_and(|s| s.is_stream)
    }

    /// The newest `startxref` offset.
    pub fn startxref(&self) -> u64 {
        self.sections.first().map(|s| s.offset).unwrap_or(0)
    }

    /// Reads `len` bytes at `offset`, or fewer at the end of the file.
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let n = self.src.read_at(offset, &mut buf).map_err(io)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Parses with a growing window from `offset`, calling `f` on the window.
    fn with_window<T>(
        &self,
        offset: u64,
        mut f: impl FnMut(&mut Cursor<'_>) -> parse::PResult<T>,
    ) -> Result<T> {
        if offset >= self.len() {
            return Err(bad(format!("offset {offset} is past the end of the file")));
        }
        let mut size = 16 << 10;
        loop {
            let buf = self.read(offset, size)?;
            let truncated = offset + (buf.len() as u64) < self.len();
            let mut c = Cursor::new(&buf, truncated);
            match f(&mut c) {
                Ok(v) => return Ok(v),
                Err(ParseError::Incomplete) if size < MAX_OBJECT_BYTES => size *= 4,
                Err(ParseError::Incomplete) => {
                    return Err(limit("an object is larger than 8 MiB"));
                }
                Err(ParseError::Syntax(s)) => return Err(bad(format!("at byte {offset}: {s}"))),
            }
        }
    }

    fn read_section(&self, offset: u64) -> Result<Section> {
        let mut probe = [0u8; 4];
        self.src.read_at(offset, &mut probe).map_err(io)?;
        if &probe == b"xref" {
            return self.read_table(offset);
        }
        // A cross-reference stream: `n g obj << /Type /XRef ... >> stream`.
        let (dict, data_start) = self.with_window(offset, |c| {
            c.unsigned()?;
            c.unsigned()?;
            c.keyword(b"obj")?;
            let o = c.object(0)?;
            c.keyword(b"stream")?;
            Ok((o, c.pos))
        })?;
        let Object::Dictionary(dict) = dict else {
            return Err(bad(format!(
                "startxref {offset} points at neither a table nor a stream"
            )));
        };
        if !dict.has_type(b"XRef") {
            return Err(bad("the cross-reference stream has no /Type /XRef"));
        }
        let start = self.skip_eol(offset + data_start as u64)?;
        let data = self.stream_at(&dict, start, MAX_STREAM_BYTES, &mut HashSet::new())?;
        let stream = Stream::new(dict.clone(), data);
        let plain = decode(&stream)?;
        let w: Vec<usize> = match dict.get(b"W") {
            Ok(Object::Array(a)) if a.len() == 3 => a
                .iter()
                .map(|o| match o {
                    Object::Integer(i) if (0..=8).contains(i) => Ok(*i as usize),
                    _ => Err(bad("bad /W in a cross-reference stream")),
                })
                .collect::<Result<_>>()?,
            _ => return Err(bad("bad /W in a cross-reference stream")),
        };
        let [w0, w1, w2] = <[usize; 3]>::try_from(w.as_slice())
            .map_err(|_| bad("bad /W in a cross-reference stream"))?;
        let row = w0 + w1 + w2;
        if row == 0 {
            return Err(bad("bad /W in a cross-reference stream"));
        }
        let size = match dict.get(b"Size") {
            Ok(Object::Integer(n)) if *n >= 0 => *n as u64,
            _ => return Err(bad("the cross-reference stream has no /Size")),
        };
        if size > MAX_OBJECTS {
            return Err(limit(format!("/Size above {MAX_OBJECTS} objects")));
        }
        let index: Vec<(u64, u64)> = match dict.get(b"Index") {
            Ok(Object::Array(a)) => a
                .chunks(2)
                .map(|p| match p {
                    [Object::Integer(s), Object::Integer(n)] if *s >= 0 && *n >= 0 => {
                        Ok((*s as u64, *n as u64))
                    }
                    _ => Err(bad("bad /Index in a cross-reference stream")),
                })
                .collect::<Result<_>>()?,
            _ => vec![(0, size)],
        };
        let mut entries = Vec::new();
        let mut rows = plain.chunks_exact(row);
        for (start, n) in index {
            if start + n > MAX_OBJECTS {
                return Err(limit(format!("more than {MAX_OBJECTS} objects")));
            }
            for i in 0..n {
                let r = rows
                    .next()
                    .ok_or_else(|| bad("the cross-reference stream is shorter than its /Index"))?;
                let field = |from: usize, width: usize| -> u64 {
                    r.iter()
                        .skip(from)
                        .take(width)
                        .fold(0u64, |a, &b| (a << 8) | u64::from(b))
                };
                let t = if w0 == 0 { 1 } else { field(0, w0) };
                let f2 = field(w0, w1);
                let f3 = field(w0 + w1, w2);
                let id = (start + i) as u32;
                let e = match t {
                    0 => Entry::Free,
                    1 => Entry::InFile {
                        offset: f2,
                        generation: f3 as u16,
                    },
                    2 => Entry::InStream {
                        stream: u32::try_from(f2).map_err(|_| bad("bad object stream number"))?,
                        index: u32::try_from(f3).map_err(|_| bad("bad object stream index"))?,
                    },
                    _ => continue,
                };
                entries.push((id, e));
            }
        }
        Ok(Section {
            offset,
            is_stream: true,
            entries,
            trailer: dict,
        })
    }

    fn read_table(&self, offset: u64) -> Result<Section> {
        let mut entries = Vec::new();
        let trailer = self.with_window(offset, |c| {
            entries.clear();
            c.keyword(b"xref")?;
            loop {
                c.skip_ws();
                if c.peek() == Some(b't') {
                    c.keyword(b"trailer")?;
                    break;
                }
                let start = c.unsigned()?;
                let n = c.unsigned()?;
                if start + n > MAX_OBJECTS {
                    return Err(ParseError::Syntax(format!(
                        "more than {MAX_OBJECTS} objects"
                    )));
                }
                for i in 0..n {
                    let off = c.unsigned()?;
                    let generation = c.unsigned()?;
                    let kind = c.token()?;
                    let id = (start + i) as u32;
                    match kind {
                        b"n" => entries.push((
                            id,
                            Entry::InFile {
                                offset: off,
                                generation: generation as u16,
                            },
                        )),
                        b"f" => entries.push((id, Entry::Free)),
                        _ => return Err(ParseError::Syntax("bad cross-reference entry".into())),
                    }
                }
            }
            match c.object(0)? {
                Object::Dictionary(d) => Ok(d),
                _ => Err(ParseError::Syntax("the trailer is not a dictionary".into())),
            }
        })?;
        Ok(Section {
            offset,
            is_stream: false,
            entries,
            trailer,
        })
    }

    /// Where an object is defined, per the newest revision.
    pub fn entry(&self, id: u32) -> Option<Entry> {
        self.xref.get(&id).copied()
    }

    /// Every object number defined in the merged table.
    pub fn object_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.xref
            .iter()
            .filter(|(_, e)| !matches!(e, Entry::Free))
            .map(|(id, _)| *id)
    }

    /// Fetches an object. Streams come back with empty content and `start_position` set to where
    /// their data begins; [`Pdf::stream_data`] reads it.
    pub fn get(&self, id: ObjectId) -> Result<Object> {
        self.get_inner(id, &mut HashSet::new())
    }

    fn get_inner(&self, id: ObjectId, seen: &mut HashSet<u32>) -> Result<Object> {
        if !seen.insert(id.0) || seen.len() > MAX_DEPTH {
            return Err(bad(format!("object {} refers to itself", id.0)));
        }
        match self.xref.get(&id.0) {
            None | Some(Entry::Free) => Ok(Object::Null),
            Some(Entry::InFile { offset, .. }) => self.object_at(*offset, Some(id.0), seen),
            Some(Entry::InStream { stream, index }) => self.compressed(*stream, *index, id.0, seen),
        }
    }

    /// Parses the object whose `n g obj` header starts at `offset`.
    pub fn object_at(
        &self,
        offset: u64,
        expect: Option<u32>,
        seen: &mut HashSet<u32>,
    ) -> Result<Object> {
        let (num, obj, stream_at) = self.with_window(offset, |c| {
            let num = c.unsigned()?;
            c.unsigned()?;
            c.keyword(b"obj")?;
            let o = c.object(0)?;
            let save = c.pos;
            let stream_at = match c.token() {
                Ok(b"stream") => Some(c.pos),
                Ok(_) | Err(ParseError::Syntax(_)) => {
                    c.pos = save;
                    None
                }
                Err(ParseError::Incomplete) => return Err(ParseError::Incomplete),
            };
            Ok((num, o, stream_at))
        })?;
        if let Some(e) = expect
            && num != u64::from(e)
        {
            return Err(bad(format!(
                "the cross-reference table points object {e} at object {num}"
            )));
        }
        match (obj, stream_at) {
            (Object::Dictionary(dict), Some(at)) => {
                let start = offset + at as u64;
                let start = self.skip_eol(start)?;
                let n = self.stream_length(&dict, seen)?;
                if start + n > self.len() {
                    return Err(bad("a stream runs past the end of the file"));
                }
                let mut s = Stream::with_position(dict, start as usize);
                s.content = Vec::new();
                Ok(Object::Stream(s))
            }
            (o, None) => Ok(o),
            (_, Some(_)) => Err(bad("a stream without a dictionary")),
        }
    }

    fn skip_eol(&self, at: u64) -> Result<u64> {
        let b = self.read(at, 2)?;
        Ok(match b.as_slice() {
            [b'\r', b'\n', ..] => at + 2,
            [b'\n', ..] | [b'\r', ..] => at + 1,
            _ => at,
        })
    }

    fn stream_length(&self, dict: &Dictionary, seen: &mut HashSet<u32>) -> Result<u64> {
        let n = match dict.get(b"Length") {
            Ok(Object::Integer(n)) => *n,
            Ok(Object::Reference(r)) => match self.get_inner(*r, seen)? {
                Object::Integer(n) => n,
                _ => return Err(bad("a stream /Length is not a number")),
            },
            _ => return Err(bad("a stream has no /Length")),
        };
        u64::try_from(n).map_err(|_| bad("a negative stream /Length"))
    }

    /// `/Length` bytes of stream data starting at `start` (already past the EOL after
    /// `stream`), at most `max`.
    fn stream_at(
        &self,
        dict: &Dictionary,
        start: u64,
        max: usize,
        seen: &mut HashSet<u32>,
    ) -> Result<Vec<u8>> {
        let n = self.stream_length(dict, seen)?;
        if n > max as u64 {
            return Err(limit(format!("a stream is larger than {max} bytes")));
        }
        let data = self.read(start, n as usize)?;
        if data.len() as u64 != n {
            return Err(bad("a stream runs past the end of the file"));
        }
        Ok(data)
    }

    /// The raw (still encoded) bytes of a stream fetched with [`Pdf::get`], at most `max`.
    pub fn stream_raw(&self, s: &Stream, max: usize) -> Result<Vec<u8>> {
        let start =
            s.start_position
                .ok_or_else(|| Error::internal("stream without a position"))? as u64;
        self.stream_at(&s.dict, start, max, &mut HashSet::new())
    }

    /// The decoded bytes of a stream fetched with [`Pdf::get`].
    pub fn stream_data(&self, s: &Stream) -> Result<Vec<u8>> {
        let raw = self.stream_raw(s, MAX_STREAM_BYTES)?;
        decode(&Stream::new(s.dict.clone(), raw))
    }

    fn compressed(
        &self,
        stream: u32,
        index: u32,
        id: u32,
        seen: &mut HashSet<u32>,
    ) -> Result<Object> {
        let cached = self
            .objstm
            .lock()
            .ok()
            .and_then(|m| m.get(&stream).cloned());
        let os = match cached {
            Some(os) => os,
            None => {
                let Object::Stream(s) = self.get_inner((stream, 0), seen)? else {
                    return Err(bad(format!("object stream {stream} is not a stream")));
                };
                let data = self.stream_data(&s)?;
                let n = match s.dict.get(b"N") {
                    Ok(Object::Integer(n)) if *n >= 0 && *n < 1_000_000 => *n as usize,
                    _ => return Err(bad("object stream without /N")),
                };
                let first = match s.dict.get(b"First") {
                    Ok(Object::Integer(f)) if *f >= 0 && (*f as usize) <= data.len() => *f as usize,
                    _ => return Err(bad("object stream with a bad /First")),
                };
                let mut c = Cursor::new(data.get(..first).unwrap_or_default(), false);
                let mut offsets = Vec::with_capacity(n.min(10_000));
                for _ in 0..n {
                    let num = c.unsigned().map_err(|_| bad("bad object stream header"))?;
                    let off = c.unsigned().map_err(|_| bad("bad object stream header"))?;
                    offsets.push((num as u32, off as usize));
                }
                let os = Arc::new(ObjStm {
                    data,
                    first,
                    offsets,
                });
                if let Ok(mut m) = self.objstm.lock() {
                    if m.len() > 64 {
                        m.clear();
                    }
                    m.insert(stream, os.clone());
                }
                os
            }
        };
        let (num, off) = os
            .offsets
            .get(index as usize)
            .copied()
            .ok_or_else(|| bad(format!("object {id} is not in its object stream")))?;
        if num != id {
            return Err(bad(format!(
                "object stream {stream} does not hold object {id}"
            )));
        }
        let at = os.first.saturating_add(off);
        let mut c = Cursor::new(os.data.get(at..).unwrap_or_default(), false);
        c.object(0).map_err(|e| match e {
            ParseError::Syntax(s) => bad(format!("object {id}: {s}")),
            ParseError::Incomplete => bad(format!("object {id} is truncated")),
        })
    }

    /// Follows a reference (once or along a short chain); other objects come back as they are.
    pub fn resolve(&self, o: &Object) -> Result<Object> {
        let mut cur = o.clone();
        for _ in 0..MAX_DEPTH {
            match cur {
                Object::Reference(r) => cur = self.get(r)?,
                other => return Ok(other),
            }
        }
        Err(bad("a chain of references is too long"))
    }

    /// The dictionary at `o` (a direct dictionary or a reference to one).
    pub fn dict(&self, o: &Object) -> Result<Dictionary> {
        match self.resolve(o)? {
            Object::Dictionary(d) => Ok(d),
            Object::Stream(s) => Ok(s.dict),
            _ => Err(bad("expected a dictionary")),
        }
    }

    pub fn root_id(&self) -> Result<ObjectId> {
        match self.trailer.get(b"Root") {
            Ok(Object::Reference(r)) => Ok(*r),
            _ => Err(bad("the trailer has no /Root")),
        }
    }

    pub fn catalog(&self) -> Result<Dictionary> {
        let d = self.dict(&Object::Reference(self.root_id()?))?;
        if !d.has_type(b"Catalog") && !d.has(b"Pages") {
            return Err(bad("/Root is not a catalog"));
        }
        Ok(d)
    }

    /// The pages in order, as object ids. The tree is walked with a depth bound and a visited set,
    /// so cycles and absurd depths are refused.
    pub fn pages(&self) -> Result<Vec<ObjectId>> {
        let cat = self.catalog()?;
        let root = match cat.get(b"Pages") {
            Ok(Object::Reference(r)) => *r,
            _ => return Err(bad("the catalog has no /Pages reference")),
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.walk(root, 0, &mut seen, &mut out)?;
        if out.is_empty() {
            return Err(bad("the document has no pages"));
        }
        Ok(out)
    }

    fn walk(
        &self,
        node: ObjectId,
        depth: usize,
        seen: &mut HashSet<u32>,
        out: &mut Vec<ObjectId>,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(limit("the page tree is too deep"));
        }
        if !seen.insert(node.0) {
            return Err(bad("the page tree has a cycle"));
        }
        if out.len() > 100_000 {
            return Err(limit("more than 100000 pages"));
        }
        let d = self.dict(&Object::Reference(node))?;
        if d.has_type(b"Page") || (!d.has(b"Kids") && d.has(b"MediaBox")) {
            out.push(node);
            return Ok(());
        }
        let kids = match d.get(b"Kids") {
            Ok(Object::Array(k)) => k.clone(),
            Ok(r @ Object::Reference(_)) => match self.resolve(r)? {
                Object::Array(k) => k,
                _ => return Err(bad("/Kids is not an array")),
            },
            _ => return Err(bad("a page tree node without /Kids")),
        };
        for k in kids {
            match k {
                Object::Reference(r) => self.walk(r, depth + 1, seen, out)?,
                _ => return Err(bad("a page tree kid is not a reference")),
            }
        }
        Ok(())
    }

    /// A page's box (inherited /MediaBox, or /CropBox when present) as [x0 y0 x1 y1].
    pub fn page_box(&self, page: ObjectId) -> Result<[f32; 4]> {
        let mut cur = self.dict(&Object::Reference(page))?;
        for _ in 0..MAX_DEPTH {
            for key in [&b"CropBox"[..], b"MediaBox"] {
                if let Ok(o) = cur.get(key)
                    && let Object::Array(a) = self.resolve(o)?
                    && a.len() == 4
                {
                    let mut r = [0f32; 4];
                    for (slot, v) in r.iter_mut().zip(a.iter()) {
                        *slot = match self.resolve(v)? {
                            Object::Integer(i) => i as f32,
                            Object::Real(f) => f,
                            _ => return Err(bad("a page box holds a non-number")),
                        };
                    }
                    return Ok([
                        r[0].min(r[2]),
                        r[1].min(r[3]),
                        r[0].max(r[2]),
                        r[1].max(r[3]),
                    ]);
                }
            }
            match cur.get(b"Parent") {
                Ok(p @ Object::Reference(_)) => cur = self.dict(p)?,
                _ => break,
            }
        }
        Err(bad("a page without /MediaBox"))
    }

    /// Feeds `[from, to)` of the file to `sink` in chunks, never holding it all.
    pub fn stream_range(&self, from: u64, to: u64, mut sink: impl FnMut(&[u8])) -> Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        let mut at = from;
        while at < to {
            let want = ((to - at) as usize).min(buf.len());
            let slot = buf.get_mut(..want).unwrap_or_default();
            let n = self.src.read_at(at, slot).map_err(io)?;
            if n == 0 {
                return Err(bad("the file ended early"));
            }
            sink(slot.get(..n).unwrap_or_default());
            at += n as u64;
        }
        Ok(())
    }
}

/// Decodes a stream's filters (Flate with predictors, and what lopdf knows), with a size limit.
pub fn decode(s: &Stream) -> Result<Vec<u8>> {
    if s.dict.get(b"Filter").is_err() {
        return Ok(s.content.clone());
    }
    s.decompressed_content_with_limit(MAX_STREAM_BYTES)
        .map_err(|e| bad(format!("a stream does not decode: {e}")))
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}
