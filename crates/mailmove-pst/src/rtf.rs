//! RTF bodies (PidTagRtfCompressed): decompression (MS-OXRTFCP) and de-encapsulation (MS-OXRTFEX).
//!
//! Outlook stores many HTML and plain-text bodies wrapped in RTF. The HTML markup sits in
//! `{\*\htmltag<N> ...}` destinations (which RTF readers ignore), the visible text sits in the
//! document body, and formatting that exists only for RTF readers is fenced between `\htmlrtf` and
//! `\htmlrtf0`. This module undoes that wrapping; it does not render real RTF.

use std::borrow::Cow;

use encoding_rs::{Encoding, REPLACEMENT, WINDOWS_1252};

/// What an item's RTF body (PidTagRtfCompressed) turned out to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RtfBody {
    /// HTML encapsulated in RTF (`\fromhtml1`), de-encapsulated (MS-OXRTFEX section 2.4).
    Html(String),
    /// Plain text encapsulated in RTF (`\fromtext`), de-encapsulated.
    Text(String),
    /// Real RTF (no encapsulation): the decompressed RTF text as it is.
    Rtf(String),
}

/// COMPTYPE of LZFu-compressed data ("LZFu").
const COMPRESSED: u32 = 0x7546_5A4C;
/// COMPTYPE of stored, uncompressed data ("MELA").
const UNCOMPRESSED: u32 = 0x414C_454D;

/// Decompresses a PidTagRtfCompressed value and de-encapsulates it.
///
/// Errors are short human-readable strings; no input makes this panic.
pub(crate) fn read_rtf_body(compressed: &[u8]) -> Result<RtfBody, String> {
    // compressed-rtf 1.0 slices the 16-byte header and a MELA body without bounds checks and
    // reserves RAWSIZE bytes up front, so a hostile header could panic or ask for 4 GiB:
    // the header is checked (and RAWSIZE capped) here first.
    let len = compressed.len() as u64;
    let field =
        |i: usize| compressed.get(i..i + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes);
    if len < 16 || u64::from(field(0)) + 4 != len {
        return Err(format!("compressed RTF header does not match its {len} bytes"));
    }
    let mut data = Cow::Borrowed(compressed);
    match field(8) {
        UNCOMPRESSED if u64::from(field(4)) + 16 > len => {
            return Err("uncompressed RTF shorter than its RAWSIZE".to_string());
        }
        COMPRESSED => {
            // A run (1 control byte + 8 references of 2 bytes, each worth at most 17 bytes) never
            // expands more than 8-fold, so a larger RAWSIZE is a lie; it only sizes a buffer and is
            // outside the CRC, so capping it changes nothing else.
            let bound = u32::try_from(len.saturating_mul(8)).unwrap_or(u32::MAX);
            if field(4) > bound {
                data.to_mut()[4..8].copy_from_slice(&bound.to_le_bytes());
            }
        }
        _ => {}
    }
    let rtf = compressed_rtf::decompress_rtf(&data).map_err(|e| format!("compressed RTF: {e}"))?;
    // The crate turns each byte into the char of the same value, so raw 8-bit text bytes are
    // really bytes of the document codepage.
    Ok(de_encapsulate_with(&rtf, true))
}

/// De-encapsulation alone, on already decompressed RTF text.
// Kept for callers that hold decompressed RTF; only the tests call it today.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn de_encapsulate(rtf: &str) -> RtfBody {
    de_encapsulate_with(rtf, false)
}

/// [`de_encapsulate`]; `latin1_bytes` reads text chars U+0080..=U+00FF as codepage bytes.
fn de_encapsulate_with(rtf: &str, latin1_bytes: bool) -> RtfBody {
    match detect(rtf) {
        Some(true) => RtfBody::Html(extract(rtf, true, latin1_bytes)),
        Some(false) => RtfBody::Text(extract(rtf, false, latin1_bytes)),
        None => RtfBody::Rtf(rtf.to_string()),
    }
}

/// One RTF token: `{`, `}`, control word `\name` (parameter clamped to `i32`), control symbol
/// (`\` and one non-letter char other than `'`), `\'hh`, or a text run, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Open,
    Close,
    Word(&'a str, Option<i32>),
    Sym(char),
    Hex(u8),
    Text(&'a str),
}

/// Tokenizer over `s` from byte `pos`; each step consumes input, so it always terminates.
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Tok<'a>;

    fn next(&mut self) -> Option<Tok<'a>> {
        let b = self.s.as_bytes();
        loop {
            let start = self.pos;
            match *b.get(start)? {
                b'{' | b'}' => {
                    self.pos += 1;
                    return Some(if b[start] == b'{' { Tok::Open } else { Tok::Close });
                }
                b'\r' | b'\n' => self.pos += 1, // raw line breaks are not content in RTF
                b'\\' => {
                    self.pos += 1;
                    if let Some(tok) = self.control() {
                        return Some(tok);
                    }
                }
                _ => {
                    // Stops only at ASCII bytes, so the slice ends on a char boundary.
                    while b.get(self.pos).is_some_and(|c| !b"{}\\\r\n".contains(c)) {
                        self.pos += 1;
                    }
                    return Some(Tok::Text(&self.s[start..self.pos]));
                }
            }
        }
    }
}

impl<'a> Lexer<'a> {
    /// Reads what follows a `\`; `None` when that yields no token.
    fn control(&mut self) -> Option<Tok<'a>> {
        let (b, start) = (self.s.as_bytes(), self.pos);
        while b.get(self.pos).is_some_and(u8::is_ascii_alphabetic) {
            self.pos += 1;
        }
        let name = &self.s[start..self.pos];
        if name.is_empty() {
            let c = self.s[start..].chars().next()?;
            self.pos += c.len_utf8();
            if c != '\'' {
                return Some(Tok::Sym(c));
            }
            // A broken `\'` escape is dropped and what follows it is read as text.
            let hex = |i: usize| b.get(i).and_then(|&h| char::from(h).to_digit(16));
            let (hi, lo) = (hex(self.pos)?, hex(self.pos + 1)?);
            self.pos += 2;
            return u8::try_from(hi * 16 + lo).ok().map(Tok::Hex);
        }
        let neg = b.get(self.pos) == Some(&b'-') && b.get(self.pos + 1).is_some_and(u8::is_ascii_digit);
        self.pos += usize::from(neg);
        let digits = self.pos;
        let mut v = 0i64;
        while let Some(d) = b.get(self.pos).filter(|d| d.is_ascii_digit()) {
            v = (v * 10 + i64::from(d - b'0')).min(1 << 32); // absurd parameters saturate
            self.pos += 1;
        }
        let v = if neg { -v } else { v };
        let param = (self.pos > digits).then_some(v.clamp(i32::MIN.into(), i32::MAX.into()) as i32);
        // One space after a control word is its delimiter, not text.
        self.pos += usize::from(b.get(self.pos) == Some(&b' '));
        if name == "bin" {
            // `\binN` precedes N raw bytes (one char each after decompression): skip them.
            let rest = &self.s[self.pos..];
            let n = param.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
            self.pos += rest.char_indices().nth(n).map_or(rest.len(), |(i, _)| i);
        }
        Some(Tok::Word(name, param))
    }
}

/// Finds `\fromhtml1` or `\fromtext` in the header: at the top level, before any document text
/// and before the first `\htmltag` (MS-OXRTFEX 2.2.3.1). `Some(true)` for HTML, `Some(false)` for text.
fn detect(rtf: &str) -> Option<bool> {
    if !rtf.starts_with("{\\rtf") {
        return None;
    }
    let mut depth = 0usize;
    for tok in (Lexer { s: rtf, pos: 0 }) {
        match tok {
            Tok::Open => depth += 1,
            Tok::Close => depth = depth.checked_sub(1).filter(|&d| d > 0)?,
            Tok::Word("fromhtml", Some(1)) if depth == 1 => return Some(true),
            Tok::Word("fromtext", _) if depth == 1 => return Some(false),
            Tok::Word("htmltag", _) => return None,
            Tok::Hex(_) if depth == 1 => return None,
            Tok::Text(t) if depth == 1 && !t.trim().is_empty() => return None,
            _ => {}
        }
    }
    None
}

/// Destinations whose content is never document text, even without a `\*` marker.
const SKIPPED: &str = "fonttbl colortbl stylesheet info pict object objdata fldinst datafield themedata \
    colorschememapping latentstyles listtable listoverridetable revtbl rsidtbl xmlnstbl generator \
    mhtmltag header footer footnote bkmkstart";

/// State saved on `{` and restored on `}`.
#[derive(Clone, Copy)]
struct Group {
    skip: bool,    // inside an ignored destination
    htmltag: bool, // inside `{\*\htmltag...}`: literal HTML, output whatever `\htmlrtf` says
    htmlrtf: bool, // between `\htmlrtf` and `\htmlrtf0`: RTF-only content, not output
    uc: usize,     // `\ucN`: fallback chars that follow each `\uN`
}

/// Output under construction: `\'hh` bytes and `\uN` units are buffered so that multi-byte
/// codepage characters and UTF-16 surrogate pairs decode as a whole.
struct Out {
    text: String,
    bytes: Vec<u8>,
    units: Vec<u16>,
    enc: &'static Encoding, // document codepage, `\ansicpgN`
}

impl Out {
    /// Decodes the pending bytes and units into `text`.
    fn flush(&mut self) {
        self.text.push_str(&self.enc.decode_without_bom_handling(&self.bytes).0);
        self.bytes.clear();
        let units = char::decode_utf16(self.units.drain(..));
        self.text.extend(units.map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)));
    }

    /// Appends one codepage byte.
    fn byte(&mut self, b: u8) {
        if !self.units.is_empty() {
            self.flush();
        }
        self.bytes.push(b);
    }

    /// Appends literal text (nothing, not even a flush, when empty).
    fn str(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.flush();
        self.text.push_str(s);
    }
}

/// Text that a control word or symbol stands for (the RTF spec's special characters).
fn control_text(tok: Tok<'_>) -> &'static str {
    match tok {
        // `\` before a raw line break is a paragraph mark too.
        Tok::Word("par" | "line", _) | Tok::Sym('\r' | '\n') => "\r\n",
        Tok::Word("tab", _) => "\t",
        Tok::Word("lquote", _) => "\u{2018}",
        Tok::Word("rquote", _) => "\u{2019}",
        Tok::Word("ldblquote", _) => "\u{201C}",
        Tok::Word("rdblquote", _) => "\u{201D}",
        Tok::Word("bullet", _) => "\u{2022}",
        Tok::Word("endash", _) => "\u{2013}",
        Tok::Word("emdash", _) => "\u{2014}",
        Tok::Sym('~') => "\u{A0}",
        Tok::Sym('_') => "\u{2011}",
        Tok::Sym('\\') => "\\",
        Tok::Sym('{') => "{",
        Tok::Sym('}') => "}",
        _ => "",
    }
}

/// Extracts the encapsulated HTML or text of `rtf`.
fn extract(rtf: &str, html: bool, latin1_bytes: bool) -> String {
    let mut out = Out { text: String::new(), bytes: Vec::new(), units: Vec::new(), enc: WINDOWS_1252 };
    let (mut stack, mut st) = (Vec::new(), Group { skip: false, htmltag: false, htmlrtf: false, uc: 1 });
    // The two previous tokens, to spot `{\*` destinations; `\uN` fallback chars still to drop.
    let (mut prev, mut fallback) = ([Tok::Close; 2], 0usize);
    for tok in (Lexer { s: rtf, pos: 0 }) {
        let [before, last] = prev;
        prev = [last, tok];
        let star = before == Tok::Open && last == Tok::Sym('*');
        let tok = match tok {
            Tok::Open | Tok::Close => {
                // An unbalanced `}` is ignored.
                if tok == Tok::Open {
                    stack.push(st)
                } else {
                    st = stack.pop().unwrap_or(st)
                }
                fallback = 0;
                continue;
            }
            _ if st.skip => continue,
            Tok::Word("htmltag", _) if html && (star || last == Tok::Open) => {
                st.htmltag = true;
                continue;
            }
            Tok::Word(name, _) if star || SKIPPED.split_whitespace().any(|d| d == name) => {
                st.skip = true;
                continue;
            }
            Tok::Text(t) if fallback > 0 => {
                let mut rest = t.chars();
                while fallback > 0 && rest.next().is_some() {
                    fallback -= 1;
                }
                Tok::Text(rest.as_str())
            }
            // The RTF spec counts a control word, symbol or `\'hh` as one fallback char.
            _ if fallback > 0 => {
                fallback -= 1;
                continue;
            }
            tok => tok,
        };
        match tok {
            Tok::Word("htmlrtf", p) => st.htmlrtf = p != Some(0),
            Tok::Word("uc", p) => st.uc = usize::try_from(p.unwrap_or(1).clamp(0, 16)).unwrap_or(1),
            Tok::Word("ansicpg", Some(n)) => {
                out.flush();
                // The replacement encoding would turn every byte into U+FFFD: keep the current one.
                let enc = u16::try_from(n).ok().and_then(codepage::to_encoding);
                out.enc = enc.filter(|&e| e != REPLACEMENT).unwrap_or(out.enc);
            }
            _ if !st.htmltag && st.htmlrtf => {}
            Tok::Text(t) if latin1_bytes => t.chars().for_each(|c| match u8::try_from(c) {
                Ok(b) if b >= 0x80 => out.byte(b),
                _ => out.str(c.encode_utf8(&mut [0; 4])),
            }),
            Tok::Text(t) => out.str(t),
            Tok::Hex(b) => out.byte(b),
            Tok::Word("u", Some(n)) => {
                // Signed 16-bit: negative values stand for code units above 0x7FFF.
                if let Ok(u) = u16::try_from(if n < 0 { n + 65536 } else { n }) {
                    if !out.bytes.is_empty() {
                        out.flush();
                    }
                    out.units.push(u);
                }
                fallback = st.uc;
            }
            tok => out.str(control_text(tok)),
        }
    }
    out.flush();
    out.text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outlook-style encapsulated HTML, after the examples in MS-OXRTFEX.
    const HTML_RTF: &str = r#"{\rtf1\ansi\ansicpg1252\fromhtml1 \deff0{\fonttbl
{\f0\fswiss\fcharset0 Arial;}
{\f1\fmodern Courier New;}
{\f2\fnil\fcharset2 Symbol;}}
{\colortbl\red0\green0\blue0;\red0\green0\blue255;}
{\*\generator Microsoft Exchange Server;}
{\*\formatConverter converted from html;}
\viewkind5\viewscale100
{\*\bkmkstart BM_BEGIN}{\*\htmltag64}
{\*\htmltag19 <html>}
{\*\htmltag34 <head>}
{\*\htmltag1 \par }
{\*\htmltag241 <style>p \{margin:0\}</style>}
{\*\htmltag41 </head>}
{\*\htmltag2 \par }
{\*\htmltag50 <body>}\htmlrtf \lang1033 \ltrpar \htmlrtf0 
{\*\htmltag64 <p>}\htmlrtf {\htmlrtf0 Caf\'e9 \u8364?5\tab ok\htmlrtf \par }\htmlrtf0 
{\*\htmltag72 </p>}
{\*\htmltag0 \par }
{\*\htmltag84 <a href="https://example.com/?a=1&amp;b=2">}\htmlrtf {\field{\*\fldinst{HYPERLINK "https://example.com/?a=1&b=2"}}{\fldrslt\cf1\ul \htmlrtf0 link\htmlrtf }\htmlrtf0 \htmlrtf }\htmlrtf0 
{\*\mhtmltag84 <a href="cid:ignored">}{\*\htmltag92 </a>}
{\*\htmltag58 </body>}
{\*\htmltag27 </html>}}"#;

    const HTML_OUT: &str = "<html><head>\r\n<style>p {margin:0}</style></head>\r\n<body><p>Café €5\tok</p>\
                            \r\n<a href=\"https://example.com/?a=1&amp;b=2\">link</a></body></html>";

    #[test]
    fn outlook_html_is_de_encapsulated() {
        assert_eq!(de_encapsulate(HTML_RTF), RtfBody::Html(HTML_OUT.to_string()));
    }

    #[test]
    fn escapes_and_unicode_decode() {
        let cp = |cpg: &str, body: &str| {
            de_encapsulate(&format!("{{\\rtf1\\ansi\\ansicpg{cpg}\\fromhtml1 {{\\*\\htmltag0 {body}}}}}"))
        };
        assert_eq!(cp("1252", r"caf\'e9 \'80"), RtfBody::Html("café €".into()));
        assert_eq!(cp("1252", r"\u8364?\uc2\u-10179\'3f\'3f\u-8704??!"), RtfBody::Html("€😀!".into()));
        assert_eq!(cp("932", r"\'82\'a0"), RtfBody::Html("あ".into()));
        assert_eq!(cp("936", r"\'c4\'e3"), RtfBody::Html("你".into()));
    }

    #[test]
    fn fromtext_is_de_encapsulated() {
        let rtf = "{\\rtf1\\ansi\\ansicpg1252\\fromtext \\deff0{\\fonttbl\r\n{\\f0\\fswiss Arial;}}\r\n\
                   {\\colortbl\\red0\\green0\\blue0;}\r\n\\uc1\\pard\\plain\\deftab360 \\f0\\fs20 Hello,\\par\r\n\
                   \\par\r\nNa\\'efve\\tab \\{x\\}\\htmlrtf \\b\\htmlrtf0 \\\\\\par\r\n}";
        assert_eq!(de_encapsulate(rtf), RtfBody::Text("Hello,\r\n\r\nNaïve\t{x}\\\r\n".into()));
    }

    #[test]
    fn real_rtf_and_late_markers_stay_rtf() {
        for rtf in [
            "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Arial;}}\\f0 Hello \\b world\\b0\\par}",
            "{\\rtf1\\ansi Hello \\fromhtml1 {\\*\\htmltag19 <html>}}",
            "{\\rtf1\\ansi{\\*\\htmltag19 <html>}\\fromtext}",
            "\\fromhtml1 {\\rtf1}",
            "",
        ] {
            assert_eq!(de_encapsulate(rtf), RtfBody::Rtf(rtf.to_string()));
        }
    }

    #[test]
    fn compressed_round_trip() {
        let packed = compressed_rtf::compress_rtf(HTML_RTF).unwrap();
        assert_eq!(read_rtf_body(&packed), Ok(RtfBody::Html(HTML_OUT.to_string())));
        // Raw 8-bit text reaches us as Latin-1 chars and is decoded with the codepage.
        let packed = compressed_rtf::compress_rtf("{\\rtf1\\ansi\\ansicpg1252\\fromtext caf\u{e9}\u{80}}");
        assert_eq!(read_rtf_body(&packed.unwrap()), Ok(RtfBody::Text("café€".into())));
    }

    #[test]
    fn bad_headers_are_errors() {
        let stored = compressed_rtf::encode_rtf("{\\rtf1 x}").unwrap();
        let mut too_long = stored.clone();
        too_long[4] = 0xFF; // RAWSIZE past the end
        let mut packed = compressed_rtf::compress_rtf(HTML_RTF).unwrap();
        assert!(read_rtf_body(&stored).is_ok());
        for bad in [&b""[..], &[0; 15], &stored[..20], &too_long, &packed[..packed.len() - 1]] {
            assert!(read_rtf_body(bad).is_err());
        }
        packed[4..8].copy_from_slice(&u32::MAX.to_le_bytes()); // absurd RAWSIZE is capped
        assert_eq!(read_rtf_body(&packed), Ok(RtfBody::Html(HTML_OUT.to_string())));
    }

    #[test]
    fn never_panics() {
        let check = |rtf: &str| {
            let out = match de_encapsulate(rtf) {
                RtfBody::Html(s) | RtfBody::Text(s) | RtfBody::Rtf(s) => s,
            };
            assert!(out.len() <= 2 * rtf.len(), "output not linear for {rtf:?}");
        };
        (0..=HTML_RTF.len()).filter(|&i| HTML_RTF.is_char_boundary(i)).for_each(|i| check(&HTML_RTF[..i]));
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        // Mostly RTF syntax; indexes past the alphabet (1 in 4) pick an arbitrary byte instead.
        let alphabet = b"{}\\'*-0123456789 abefhlmprtux?\r\n";
        for len in (0..4000).map(|i| i % 97) {
            let mut bytes = b"{\\rtf1\\fromhtml1 ".to_vec();
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(alphabet.get((x >> 24) as usize % 44).copied().unwrap_or((x >> 40) as u8));
            }
            check(&String::from_utf8_lossy(&bytes));
            check(&String::from_utf8_lossy(&bytes[16..]));
            let mut stored = compressed_rtf::encode_rtf("").unwrap();
            stored[..4].copy_from_slice(&(12 + bytes.len() as u32).to_le_bytes());
            stored[4..8].copy_from_slice(&((x >> 40) as u32 % 200).to_le_bytes());
            stored.extend_from_slice(&bytes);
            let _ = read_rtf_body(&stored);
        }
    }
}
