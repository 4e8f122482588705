//! The IMAP response grammar we need, parsed from framed responses.
//!
//! The connection ([`crate::conn`]) frames one response at a time: the response line plus every
//! literal it announces, with large literals already streamed to a spool file and referenced here
//! as [`Value::Big`]. This module turns such a frame into a [`Response`]: a status response (tagged,
//! untagged or continuation, with its `[CODE args]` kept as text so that codes from any RFC, such as
//! `OVERQUOTA` or `THROTTLED`, can be read), or untagged data as a tree of [`Value`]s.
//!
//! The parser is written for hostile input: it never panics, bounds nesting depth, accepts 8-bit
//! text (servers localise their messages; UTF8=ACCEPT names are UTF-8), and reports anything it
//! cannot read as [`ParseError`] for that response only.

use bytes::Bytes;
use mailmove_core::MessageBody;

use crate::code::ResponseCode;
use crate::nul_bytes::NulScan;

/// Deepest list nesting accepted (BODYSTRUCTURE of pathological messages is the deepest thing a
/// server sends; we never ask for it).
const MAX_DEPTH: usize = 64;

/// A literal placed in a frame: where its data starts and, for a large one, the spooled body.
#[derive(Debug, Clone)]
pub(crate) struct LiteralSlot {
    /// Offset in the frame of the first data byte (just after the CRLF of `{n}`).
    pub offset: usize,
    /// The data, when it was too large to stay in the frame (the frame then holds no data bytes).
    pub spooled: Option<Spooled>,
    /// The literal was larger than the command allows and was read and dropped (the frame holds
    /// no data bytes; see [`crate::literal::LiteralPolicy`]).
    pub dropped: bool,
}

/// A literal spooled to disk as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct Spooled {
    pub body: MessageBody,
    /// What a message body held of NUL and stray 0x80 bytes, judged as it arrived (a body of a
    /// FETCH only; see [`crate::nul_bytes`]).
    pub nul_scan: Option<NulScan>,
}

/// One framed response as read from the wire.
#[derive(Debug, Clone, Default)]
pub(crate) struct Frame {
    /// The response bytes, literals included (except spooled ones), final CRLF included. Shared:
    /// an in-memory literal is a slice of it, not a copy.
    pub bytes: Bytes,
    /// The literals, in order.
    pub literals: Vec<LiteralSlot>,
}

/// A parsed value of untagged data.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// An atom or number, as text (`\Seen`, `BODY[]`, `42`).
    Atom(String),
    /// `NIL`.
    Nil,
    /// A quoted string or an in-memory literal.
    Bytes(Bytes),
    /// A literal that was spooled to disk.
    Big(Spooled),
    /// A literal of this many bytes that was too large for its place and was dropped unread.
    Dropped(u64),
    /// A parenthesised list.
    List(Vec<Value>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Atom(a), Value::Atom(b)) => a == b,
            (Value::Nil, Value::Nil) => true,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            // Spooled bodies compare by length only: equality is for tests and diagnostics.
            (Value::Big(a), Value::Big(b)) => a.body.len() == b.body.len(),
            (Value::Dropped(a), Value::Dropped(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// The value as text: an atom, or a string decoded as UTF-8 (lossy).
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Atom(atom) => Some(atom.clone()),
            Value::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }

    /// The value as a number.
    pub fn number(&self) -> Option<u64> {
        match self {
            Value::Atom(atom) => atom.parse().ok(),
            _ => None,
        }
    }

    /// The value as a list.
    pub fn list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this is the atom `name` (case-insensitive).
    pub fn is_atom(&self, name: &str) -> bool {
        matches!(self, Value::Atom(atom) if atom.eq_ignore_ascii_case(name))
    }
}

/// OK, NO, BAD, BYE or PREAUTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    No,
    Bad,
    Bye,
    PreAuth,
}

/// A response code `[NAME args]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Code {
    /// Upper-cased name (`APPENDUID`, `OVERQUOTA`).
    pub name: String,
    /// The rest, as sent.
    pub args: String,
}

impl Code {
    /// The code, when it is one the crate acts on.
    pub fn kind(&self) -> Option<ResponseCode> {
        ResponseCode::of(&self.name)
    }
}

/// A status response: tagged, untagged or the end of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusResponse {
    pub status: Status,
    pub code: Option<Code>,
    pub text: String,
}

impl StatusResponse {
    /// Whether the response carries `code`.
    pub fn has_code(&self, code: ResponseCode) -> bool {
        self.code.as_ref().is_some_and(|got| got.name == code.name())
    }

    /// Whether the response carries `code`, or names it in brackets inside its text: GNU Mailutils
    /// imap4d answers `NO APPEND [TRYCREATE] failed`, the code after the command's name. Only for
    /// codes whose meaning is safe to act on however they were written (TRYCREATE).
    pub fn mentions_code(&self, code: ResponseCode) -> bool {
        self.has_code(code) || self.text.contains(&format!("[{}]", code.name()))
    }

    /// The response code's arguments when the response carries `code`.
    pub fn code_args(&self, code: ResponseCode) -> Option<&str> {
        self.code.as_ref().filter(|got| got.name == code.name()).map(|got| got.args.as_str())
    }

    /// The response code, when it is one the crate acts on.
    pub fn code_kind(&self) -> Option<ResponseCode> {
        self.code.as_ref().and_then(Code::kind)
    }

    /// The text with the code, for messages (never contains anything we sent).
    pub fn describe(&self) -> String {
        match &self.code {
            Some(code) if code.args.is_empty() => format!("[{}] {}", code.name, self.text),
            Some(code) => format!("[{} {}] {}", code.name, code.args, self.text),
            None => self.text.clone(),
        }
    }
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Response {
    /// `tag OK|NO|BAD ...`
    Tagged { tag: String, status: StatusResponse },
    /// `* OK|NO|BAD|BYE|PREAUTH ...`
    Untagged(StatusResponse),
    /// `+ ...`
    Continue(String),
    /// Other untagged data (`* 3 FETCH (...)`, `* LIST ...`), as values after the `*`.
    Data(Vec<Value>),
}

/// A response we could not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unparsable IMAP response ({reason}): {excerpt:?}")]
pub(crate) struct ParseError {
    pub reason: &'static str,
    pub excerpt: String,
}

fn parse_error(reason: &'static str, bytes: &[u8]) -> ParseError {
    let end = bytes.len().min(200);
    ParseError { reason, excerpt: String::from_utf8_lossy(&bytes[..end]).into_owned() }
}

/// Parses one frame.
pub(crate) fn parse(frame: &Frame) -> Result<Response, ParseError> {
    let bytes = &frame.bytes;
    let line_end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
    if bytes.starts_with(b"+") {
        let text = trim_line(&bytes[1..line_end]);
        return Ok(Response::Continue(String::from_utf8_lossy(text).trim_start().to_string()));
    }
    if let Some(rest) = bytes.strip_prefix(b"* ") {
        if let Some(status) = parse_status(trim_line(&rest[..line_end.saturating_sub(2)])) {
            return Ok(Response::Untagged(status));
        }
        let mut parser = Parser { frame, pos: 2, literal: 0 };
        let values = parser.values(0)?;
        return Ok(Response::Data(values));
    }
    let space =
        bytes[..line_end].iter().position(|&b| b == b' ').ok_or_else(|| parse_error("no tag", bytes))?;
    let tag = String::from_utf8_lossy(&bytes[..space]).into_owned();
    let status = parse_status(trim_line(&bytes[space + 1..line_end]))
        .ok_or_else(|| parse_error("tagged response without OK/NO/BAD", bytes))?;
    if matches!(status.status, Status::Bye | Status::PreAuth) {
        return Err(parse_error("tagged BYE/PREAUTH", bytes));
    }
    Ok(Response::Tagged { tag, status })
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses `OK [CODE args] text` (and NO, BAD, BYE, PREAUTH); `None` when the line is not one.
pub(crate) fn parse_status(line: &[u8]) -> Option<StatusResponse> {
    let word_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let status = match line[..word_end].to_ascii_uppercase().as_slice() {
        b"OK" => Status::Ok,
        b"NO" => Status::No,
        b"BAD" => Status::Bad,
        b"BYE" => Status::Bye,
        b"PREAUTH" => Status::PreAuth,
        _ => return None,
    };
    let rest = line.get(word_end + 1..).unwrap_or(&[]);
    let mut code = None;
    let mut text = rest;
    if rest.starts_with(b"[") {
        // The code ends at the first `]` outside of nothing fancier than atoms and parentheses.
        if let Some(close) = rest.iter().position(|&b| b == b']') {
            let inner = String::from_utf8_lossy(&rest[1..close]).into_owned();
            let (name, args) = match inner.split_once(' ') {
                Some((name, args)) => (name.to_ascii_uppercase(), args.to_string()),
                None => (inner.to_ascii_uppercase(), String::new()),
            };
            code = Some(Code { name, args });
            text = rest.get(close + 1..).unwrap_or(&[]);
            text = text.strip_prefix(b" ").unwrap_or(text);
        }
    }
    Some(StatusResponse { status, code, text: String::from_utf8_lossy(text).into_owned() })
}

struct Parser<'a> {
    frame: &'a Frame,
    pos: usize,
    /// Index of the next literal slot.
    literal: usize,
}

impl Parser<'_> {
    fn bytes(&self) -> &[u8] {
        &self.frame.bytes
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn error(&self, reason: &'static str) -> ParseError {
        parse_error(reason, self.bytes())
    }

    /// Values until the end of the response (depth 0) or the closing `)`.
    fn values(&mut self, depth: usize) -> Result<Vec<Value>, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("lists nested too deep"));
        }
        let mut out = Vec::new();
        loop {
            while self.peek() == Some(b' ') {
                self.pos += 1;
            }
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') if depth == 0 => return Ok(out),
                None | Some(b'\r') | Some(b'\n') => return Err(self.error("unclosed list")),
                Some(b')') if depth > 0 => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b')') => return Err(self.error("unbalanced `)`")),
                Some(b'(') => {
                    self.pos += 1;
                    out.push(Value::List(self.values(depth + 1)?));
                }
                Some(b'"') => out.push(self.quoted()?),
                Some(b'{') => out.push(self.literal()?),
                Some(b'~') if self.bytes().get(self.pos + 1) == Some(&b'{') => {
                    self.pos += 1;
                    out.push(self.literal()?);
                }
                Some(_) => out.push(self.atom()?),
            }
        }
    }

    fn quoted(&mut self) -> Result<Value, ParseError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return Err(self.error("unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Value::Bytes(Bytes::from(out)));
                }
                Some(b'\\') => {
                    let next = self.bytes().get(self.pos + 1).copied();
                    match next {
                        Some(ch @ (b'\\' | b'"')) => out.push(ch),
                        _ => return Err(self.error("bad escape in quoted string")),
                    }
                    self.pos += 2;
                }
                Some(byte) => {
                    out.push(byte);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Value, ParseError> {
        let slot = self.frame.literals.get(self.literal).ok_or_else(|| self.error("unexpected literal"))?;
        // The data starts after `{n}` CRLF: the framer recorded where.
        let close = self.bytes()[self.pos..]
            .iter()
            .position(|&b| b == b'}')
            .map(|p| self.pos + p)
            .ok_or_else(|| self.error("bad literal"))?;
        let length: usize = std::str::from_utf8(&self.bytes()[self.pos + 1..close])
            .ok()
            .map(|digits| digits.trim_end_matches('+'))
            .and_then(|digits| digits.parse().ok())
            .ok_or_else(|| self.error("bad literal length"))?;
        if slot.offset < close {
            return Err(self.error("literal out of place"));
        }
        self.literal += 1;
        if slot.dropped {
            self.pos = slot.offset;
            return Ok(Value::Dropped(length as u64));
        }
        if let Some(spooled) = &slot.spooled {
            self.pos = slot.offset;
            return Ok(Value::Big(spooled.clone()));
        }
        let end = slot.offset.checked_add(length).filter(|end| *end <= self.bytes().len());
        let end = end.ok_or_else(|| self.error("literal longer than the frame"))?;
        let data = self.frame.bytes.slice(slot.offset..end);
        self.pos = end;
        Ok(Value::Bytes(data))
    }

    fn atom(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        let mut brackets = 0usize;
        while let Some(byte) = self.peek() {
            match byte {
                b'[' => brackets += 1,
                b']' => brackets = brackets.saturating_sub(1),
                b'\r' | b'\n' => break,
                b' ' | b'(' | b')' | b'"' | b'{' if brackets == 0 => break,
                _ => {}
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("empty atom"));
        }
        let text = String::from_utf8_lossy(&self.bytes()[start..self.pos]).into_owned();
        if text.eq_ignore_ascii_case("NIL") {
            return Ok(Value::Nil);
        }
        Ok(Value::Atom(text))
    }
}

/// Quotes a string for a command. Refuses CR, LF and NUL (they cannot travel in a quoted string
/// and would allow command injection); other bytes, 8-bit included, are quoted with escapes.
pub(crate) fn quote(value: &str) -> Result<String, char> {
    if let Some(bad) = value.chars().find(|ch| matches!(ch, '\r' | '\n' | '\0')) {
        return Err(bad);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for ch in value.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A frame from text where each literal is inline.
    pub(crate) fn frame(text: &[u8]) -> Frame {
        let mut literals = Vec::new();
        let mut index = 0;
        while let Some(p) = text[index..].windows(3).position(|w| w == b"}\r\n") {
            let close = index + p;
            let open = text[..close].iter().rposition(|&b| b == b'{');
            if let Some(open) = open {
                if let Ok(len) = std::str::from_utf8(&text[open + 1..close]).unwrap_or("x").parse::<usize>() {
                    literals.push(LiteralSlot { offset: close + 3, spooled: None, dropped: false });
                    index = close + 3 + len;
                    continue;
                }
            }
            index = close + 3;
        }
        Frame { bytes: Bytes::copy_from_slice(text), literals }
    }

    #[test]
    fn parses_status_responses() {
        let r = parse(&frame(b"A1 NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n")).unwrap();
        let Response::Tagged { tag, status } = r else { panic!("{r:?}") };
        assert_eq!(tag, "A1");
        assert_eq!(status.status, Status::No);
        assert!(status.has_code(crate::code::ResponseCode::OverQuota));
        assert_eq!(status.text, "Quota exceeded (mailbox for user is full)");

        let r = parse(&frame(b"a2 OK [APPENDUID 1795237129 1] Append completed.\r\n")).unwrap();
        let Response::Tagged { status, .. } = r else { panic!() };
        assert_eq!(status.code, Some(Code { name: "APPENDUID".into(), args: "1795237129 1".into() }));

        let r = parse(&frame("* BYE Serveur indisponible \u{e9}\r\n".as_bytes())).unwrap();
        assert_eq!(
            r,
            Response::Untagged(StatusResponse {
                status: Status::Bye,
                code: None,
                text: "Serveur indisponible \u{e9}".into()
            })
        );
        assert_eq!(parse(&frame(b"+ \r\n")).unwrap(), Response::Continue(String::new()));
        assert_eq!(parse(&frame(b"+\r\n")).unwrap(), Response::Continue(String::new()));
        assert_eq!(
            parse(&frame(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n")).unwrap(),
            Response::Continue("eyJzdGF0dXMiOiI0MDEifQ==".into())
        );
        assert!(parse(&frame(b"garbage\r\n")).is_err());
    }

    #[test]
    fn parses_fetch_with_literal_and_brackets() {
        let r = parse(&frame(
            b"* 12 FETCH (UID 5 FLAGS (\\Seen $Work) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4 BODY[] {4}\r\na\r\nb)\r\n",
        ))
        .unwrap();
        let Response::Data(values) = r else { panic!() };
        assert_eq!(values[0], Value::Atom("12".into()));
        assert!(values[1].is_atom("fetch"));
        let items = values[2].list().unwrap();
        assert_eq!(items[0], Value::Atom("UID".into()));
        assert_eq!(items[3].list().unwrap()[1], Value::Atom("$Work".into()));
        assert_eq!(items[8], Value::Atom("BODY[]".into()));
        assert_eq!(items[9], Value::Bytes(Bytes::from_static(b"a\r\nb")));
    }

    #[test]
    fn parses_list_and_namespace() {
        let r = parse(&frame(b"* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n")).unwrap();
        let Response::Data(values) = r else { panic!() };
        assert_eq!(values.len(), 4);
        assert_eq!(values[3], Value::Bytes(Bytes::from_static(b"Sent Items")));
        let r = parse(&frame(b"* LIST () NIL {5}\r\nIN\"BX\r\n")).unwrap();
        let Response::Data(values) = r else { panic!() };
        assert_eq!(values[2], Value::Nil);
        assert_eq!(values[3], Value::Bytes(Bytes::from_static(b"IN\"BX")));
        let r = parse(&frame(b"* NAMESPACE ((\"INBOX.\" \".\")) NIL ((\"#shared/\" \"/\"))\r\n")).unwrap();
        let Response::Data(values) = r else { panic!() };
        assert_eq!(values.len(), 4);
        assert_eq!(values[2], Value::Nil);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("x\ry"), Err('\r'));
        assert_eq!(quote("x\0"), Err('\0'));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&frame(&bytes));
            let mut with_prefix = b"* ".to_vec();
            with_prefix.extend_from_slice(&bytes);
            let _ = parse(&frame(&with_prefix));
        }

        #[test]
        fn quoted_round_trips(text in "[^\r\n\u{0}]{0,40}") {
            let quoted = quote(&text).unwrap();
            let line = format!("* LIST () \"/\" {quoted}\r\n");
            let Response::Data(values) = parse(&frame(line.as_bytes())).unwrap() else { panic!() };
            prop_assert_eq!(values[3].text().unwrap(), text);
        }
    }
}
