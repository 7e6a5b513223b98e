//! A bounded PDF object parser over a byte window.
//!
//! lopdf's own parser is private and reads whole files; this one parses one object at a time from
//! a window of bytes, into lopdf's object model, with limits on nesting and sizes so hostile input
//! ends in an error, never a stack overflow or an unbounded allocation.

use lopdf::{Dictionary, Object, StringFormat};

/// How deep arrays and dictionaries may nest.
pub const MAX_DEPTH: usize = 64;
/// How many items one array or dictionary may hold.
pub const MAX_ITEMS: usize = 100_000;

/// Why a window did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The window ended inside the object: read more bytes and try again.
    Incomplete,
    /// The bytes are not PDF syntax.
    Syntax(String),
}

pub type PResult<T> = std::result::Result<T, ParseError>;

fn syntax<T>(msg: impl Into<String>) -> PResult<T> {
    Err(ParseError::Syntax(msg.into()))
}

pub fn is_white(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'\0')
}

pub fn is_delim(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

/// A cursor over a window of a file.
pub struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    /// True when the window ends before the file does (running out means: read more).
    pub truncated: bool,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], truncated: bool) -> Self {
        Cursor {
            buf,
            pos: 0,
            truncated,
        }
    }

    fn end<T>(&self) -> PResult<T> {
        if self.truncated {
            Err(ParseError::Incomplete)
        } else {
            syntax("unexpected end of file")
        }
    }

    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn next(&mut self) -> PResult<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.end(),
        }
    }

    /// Skips white space and comments.
    pub fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            if is_white(b) {
                self.pos += 1;
            } else if b == b'%' {
                while let Some(c) = self.peek() {
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// A regular-character token (keyword or number) without consuming what follows.
    pub fn token(&mut self) -> PResult<&'a [u8]> {
        self.skip_ws();
        let start = self.pos;
        while let Some(b) = self.peek() {
            if is_white(b) || is_delim(b) {
                break;
            }
            self.pos += 1;
        }
        if self.pos == self.buf.len() && self.truncated {
            return Err(ParseError::Incomplete);
        }
        let t = self.buf.get(start..self.pos).unwrap_or_default();
        if t.is_empty() {
            return match self.peek() {
                None => self.end(),
                Some(b) => syntax(format!("unexpected character {:?}", b as char)),
            };
        }
        Ok(t)
    }

    pub fn keyword(&mut self, kw: &[u8]) -> PResult<()> {
        let t = self.token()?;
        if t == kw {
            Ok(())
        } else {
            syntax(format!(
                "expected {}, found {}",
                String::from_utf8_lossy(kw),
                String::from_utf8_lossy(t.get(..t.len().min(20)).unwrap_or_default())
            ))
        }
    }

    pub fn unsigned(&mut self) -> PResult<u64> {
        let t = self.token()?;
        parse_unsigned(t).ok_or_else(|| {
            ParseError::Syntax(format!(
                "expected a number, found {}",
                String::from_utf8_lossy(t.get(..t.len().min(20)).unwrap_or_default())
            ))
        })
    }

    /// Parses one object (references `n g R` included).
    pub fn object(&mut self, depth: usize) -> PResult<Object> {
        if depth > MAX_DEPTH {
            return syntax("objects nest too deeply");
        }
        self.skip_ws();
        let b = match self.peek() {
            Some(b) => b,
            None => return self.end(),
        };
        match b {
            b'/' => {
                self.pos += 1;
                Ok(Object::Name(self.name_body()?))
            }
            b'(' => {
                self.pos += 1;
                Ok(Object::String(self.literal()?, StringFormat::Literal))
            }
            b'<' => {
                if self.buf.get(self.pos + 1) == Some(&b'<') {
                    self.pos += 2;
                    Ok(Object::Dictionary(self.dict_body(depth)?))
                } else if self.pos + 1 >= self.buf.len() {
                    self.end()
                } else {
                    self.pos += 1;
                    Ok(Object::String(self.hex()?, StringFormat::Hexadecimal))
                }
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        None => return self.end(),
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Object::Array(items));
                        }
                        Some(_) => {
                            if items.len() >= MAX_ITEMS {
                                return syntax("array too long");
                            }
                            items.push(self.object(depth + 1)?);
                        }
                    }
                }
            }
            _ => {
                let t = self.token()?;
                match t {
                    b"true" => Ok(Object::Boolean(true)),
                    b"false" => Ok(Object::Boolean(false)),
                    b"null" => Ok(Object::Null),
                    _ => {
                        if let Some(n) = parse_unsigned(t) {
                            // Maybe `n g R`.
                            let save = self.pos;
                            if let Some(r) = self.try_reference(n)? {
                                return Ok(r);
                            }
                            self.pos = save;
                            return i64::try_from(n)
                                .map(Object::Integer)
                                .or_else(|_| syntax("integer out of range"));
                        }
                        parse_number(t).ok_or_else(|| {
                            ParseError::Syntax(format!(
                                "unexpected token {}",
                                String::from_utf8_lossy(
                                    t.get(..t.len().min(20)).unwrap_or_default()
                                )
                            ))
                        })
                    }
                }
            }
        }
    }

    fn try_reference(&mut self, n: u64) -> PResult<Option<Object>> {
        self.skip_ws();
        match self.peek() {
            Some(b) if b.is_ascii_digit() => {}
            None if self.truncated => return Err(ParseError::Incomplete),
            _ => return Ok(None),
        }
        let g = match self.token() {
            Ok(t) => match parse_unsigned(t) {
                Some(g) => g,
                None => return Ok(None),
            },
            Err(ParseError::Incomplete) => return Err(ParseError::Incomplete),
            Err(_) => return Ok(None),
        };
        self.skip_ws();
        if self.peek() == Some(b'R')
            && self
                .buf
                .get(self.pos + 1)
                .is_none_or(|&c| is_white(c) || is_delim(c))
        {
            if self.pos + 1 >= self.buf.len() && self.truncated {
                return Err(ParseError::Incomplete);
            }
            self.pos += 1;
            let id =
                u32::try_from(n).map_err(|_| ParseError::Syntax("bad object number".into()))?;
            let gen_ = u16::try_from(g).map_err(|_| ParseError::Syntax("bad generation".into()))?;
            return Ok(Some(Object::Reference((id, gen_))));
        }
        if self.peek().is_none() && self.truncated {
            return Err(ParseError::Incomplete);
        }
        Ok(None)
    }

    fn name_body(&mut self) -> PResult<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            if is_white(b) || is_delim(b) {
                return Ok(out);
            }
            self.pos += 1;
            if b == b'#' {
                let h = self.next()?;
                let l = self.next()?;
                match (hex_val(h), hex_val(l)) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return syntax("bad #-escape in a name"),
                }
            } else {
                out.push(b);
            }
            if out.len() > 4096 {
                return syntax("name too long");
            }
        }
        // A name may end the input; in a window cut short, read more to be sure.
        if self.truncated {
            Err(ParseError::Incomplete)
        } else {
            Ok(out)
        }
    }

    fn literal(&mut self) -> PResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut level = 0usize;
        loop {
            let b = self.next()?;
            match b {
                b'(' => {
                    level += 1;
                    out.push(b);
                }
                b')' => {
                    if level == 0 {
                        return Ok(out);
                    }
                    level -= 1;
                    out.push(b);
                }
                b'\\' => {
                    let e = self.next()?;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'\r' => {
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        self.pos += 1;
                                        v = v * 8 + u32::from(d - b'0');
                                    }
                                    _ => break,
                                }
                            }
                            out.push((v & 0xff) as u8);
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }

    fn hex(&mut self) -> PResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut hi: Option<u8> = None;
        loop {
            let b = self.next()?;
            if b == b'>' {
                if let Some(h) = hi {
                    out.push(h << 4);
                }
                return Ok(out);
            }
            if is_white(b) {
                continue;
            }
            let v = hex_val(b).ok_or_else(|| ParseError::Syntax("bad hex string".into()))?;
            match hi.take() {
                Some(h) => out.push(h << 4 | v),
                None => hi = Some(v),
            }
        }
    }

    fn dict_body(&mut self, depth: usize) -> PResult<Dictionary> {
        let mut d = Dictionary::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => return self.end(),
                Some(b'>') => {
                    if self.buf.get(self.pos + 1) == Some(&b'>') {
                        self.pos += 2;
                        return Ok(d);
                    }
                    if self.pos + 1 >= self.buf.len() {
                        return self.end();
                    }
                    return syntax("unbalanced > in a dictionary");
                }
                Some(b'/') => {
                    self.pos += 1;
                    let key = self.name_body()?;
                    let value = self.object(depth + 1)?;
                    if d.len() >= MAX_ITEMS {
                        return syntax("dictionary too large");
                    }
                    d.set(key, value);
                }
                Some(_) => return syntax("dictionary key is not a name"),
            }
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

pub fn parse_unsigned(t: &[u8]) -> Option<u64> {
    if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

fn parse_number(t: &[u8]) -> Option<Object> {
    let s = std::str::from_utf8(t).ok()?;
    if s.len() > 40 {
        return None;
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.'))
    {
        return None;
    }
    if !s.contains('.') {
        return s.parse::<i64>().ok().map(Object::Integer);
    }
    let v: f64 = if s.starts_with('.') || s.starts_with("-.") || s.starts_with("+.") {
        s.replacen('.', "0.", 1).parse().ok()?
    } else {
        s.trim_end_matches('.').parse().ok()?
    };
    Some(Object::Real(v as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> PResult<Object> {
        Cursor::new(s.as_bytes(), false).object(0)
    }

    #[test]
    fn objects() {
        assert_eq!(parse("12 0 R"), Ok(Object::Reference((12, 0))));
        assert_eq!(parse("12 0"), Ok(Object::Integer(12)));
        assert_eq!(parse("-3.5"), Ok(Object::Real(-3.5)));
        assert_eq!(parse("/A#20B"), Ok(Object::Name(b"A B".to_vec())));
        assert_eq!(
            parse("(a\\(b\\)c\\101)"),
            Ok(Object::String(b"a(b)cA".to_vec(), StringFormat::Literal))
        );
        let d = parse("<< /Type /Page /Kids [1 0 R 2 0 R] /N <414> >>");
        let Ok(Object::Dictionary(d)) = d else {
            panic!("{d:?}")
        };
        assert_eq!(d.get(b"Type").ok(), Some(&Object::Name(b"Page".to_vec())));
        assert_eq!(
            d.get(b"N").ok(),
            Some(&Object::String(vec![0x41, 0x40], StringFormat::Hexadecimal))
        );
    }

    #[test]
    fn hostile() {
        let deep = "[".repeat(10_000);
        assert!(matches!(parse(&deep), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("<< /A"), Err(ParseError::Syntax(_))));
        assert_eq!(
            Cursor::new(b"<< /A 1", true).object(0),
            Err(ParseError::Incomplete)
        );
        assert!(matches!(parse("<< 1 2 >>"), Err(ParseError::Syntax(_))));
    }
}
