//! The redaction rules of a protocol trace, all of them, for IMAP and POP3 (see the
//! [`trace`](super) module documentation for the list).
//!
//! A [`Redactor`] follows one connection in both directions: the client's side tells it which
//! command runs (a `LOGIN` whose continuation after a literal still carries the password, an
//! `AUTHENTICATE` whose next lines are SASL responses, a `RETR` whose reply is a body), the
//! server's side when a command ends. Framing is [`Framer`]'s: literal and body bytes never get
//! here, only their counts.

use std::collections::VecDeque;
use std::fmt::Write as _;

use mailmove_core::Secret;

use super::framing::{Framer, Line, Piece, Unfinished};
use super::Protocol;

/// What replaces a secret.
pub(super) const REDACTED: &str = "[redacted]";
/// Secrets shorter than this are not searched for in every line (each `a` of a trace would
/// become `[redacted]`); the structural rules cover them.
const MIN_SCRUBBED: usize = 4;
/// Commands remembered while their POP3 replies are awaited (a bound, not a limit of the
/// protocol: our client sends one command at a time).
const MAX_PENDING: usize = 1024;

/// Who sent a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// The client (mailmove).
    Client,
    /// The server.
    Server,
}

impl Direction {
    pub fn letter(self) -> char {
        match self {
            Direction::Client => 'C',
            Direction::Server => 'S',
        }
    }
}

/// One line of the trace, redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub direction: Direction,
    pub text: String,
}

/// Both directions of one connection, and what the rules remember between lines.
#[derive(Debug)]
pub(super) struct Redactor {
    protocol: Protocol,
    client: Framer,
    server: Framer,
    imap: ImapState,
    pop3: Pop3State,
    secrets: Vec<Secret>,
}

#[derive(Debug, Default)]
struct ImapState {
    /// The command being sent, until its last line.
    command: Option<Command>,
    /// The client's last line announced a literal: the next one continues the same command.
    client_continues: bool,
    /// The same for the server's responses.
    server_continues: bool,
    /// A synchronising literal announced by the client, sent after the server's `+`: the
    /// command's tag and the literal's length.
    pending_literal: Option<(Vec<u8>, u64)>,
    /// The tag of an `AUTHENTICATE` under way: until its tagged answer, every client line is a
    /// SASL response.
    sasl: Option<Vec<u8>>,
    /// The FETCH response being read, when one is.
    fetch: Option<FetchScan>,
}

#[derive(Debug)]
struct Command {
    tag: Vec<u8>,
    login: Option<Login>,
}

/// Where a `LOGIN` command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Login {
    /// The user name is a literal still to come.
    User,
    /// Everything from here on is the password.
    Password,
}

/// A FETCH response: whether the next value is message content, and the depth of a redacted
/// parenthesised value (ENVELOPE, BODYSTRUCTURE) being skipped.
#[derive(Debug, Default)]
struct FetchScan {
    content_next: bool,
    structure_next: bool,
    skipping: u32,
}

#[derive(Debug, Default)]
struct Pop3State {
    /// An `AUTH` exchange under way: every client line is a SASL response.
    sasl: bool,
    /// Commands sent whose status line has not arrived yet, oldest first.
    pending: VecDeque<Pop3Reply>,
    /// Inside a multi-line listing (CAPA, UIDL, LIST): lines are data until `.`.
    listing: bool,
}

/// What a POP3 command's `+OK` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pop3Reply {
    Single,
    Listing,
    Body,
}

impl Redactor {
    pub fn new(protocol: Protocol) -> Self {
        let literals = protocol == Protocol::Imap;
        Redactor {
            protocol,
            client: Framer::new(literals),
            server: Framer::new(literals),
            imap: ImapState::default(),
            pop3: Pop3State::default(),
            secrets: Vec::new(),
        }
    }

    /// A secret to replace wherever it shows (a server echoing a password, say), besides the
    /// structural rules.
    pub fn add_secret(&mut self, secret: &str) {
        if secret.len() >= MIN_SCRUBBED && !self.secrets.iter().any(|known| known.expose() == secret) {
            self.secrets.push(Secret::new(secret));
        }
    }

    /// Bytes the client sent.
    pub fn client(&mut self, mut input: &[u8], out: &mut Vec<Record>) {
        while let Some(piece) = self.client.next(&mut input) {
            let text = match self.protocol {
                Protocol::Imap => self.imap_client(piece),
                Protocol::Pop3 => self.pop3_client(piece),
            };
            self.push(out, Direction::Client, text);
        }
    }

    /// Bytes the server sent.
    pub fn server(&mut self, mut input: &[u8], out: &mut Vec<Record>) {
        while let Some(piece) = self.server.next(&mut input) {
            match (self.protocol, piece) {
                (_, Piece::Body(bytes)) => {
                    self.push(out, Direction::Server, Some(format!("[{bytes} bytes redacted]")));
                    self.push(out, Direction::Server, Some(".".into()));
                }
                (Protocol::Imap, piece) => {
                    let text = self.imap_server(piece);
                    self.push(out, Direction::Server, text);
                }
                (Protocol::Pop3, piece) => {
                    let text = self.pop3_server(piece);
                    self.push(out, Direction::Server, text);
                }
            }
        }
    }

    /// What was under way in either direction when the connection ended.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        for direction in [Direction::Client, Direction::Server] {
            let framer = match direction {
                Direction::Client => &mut self.client,
                Direction::Server => &mut self.server,
            };
            let text = match framer.finish() {
                None => continue,
                Some(Unfinished::Literal { seen, total }) => {
                    format!("[{seen} of {total} bytes redacted; the literal did not end]")
                }
                Some(Unfinished::Body(bytes)) => format!("[{bytes} bytes redacted; the body did not end]"),
                Some(Unfinished::Line(line)) => {
                    let piece = Piece::Line(line);
                    let text = match (self.protocol, direction) {
                        (Protocol::Imap, Direction::Client) => self.imap_client(piece),
                        (Protocol::Imap, Direction::Server) => self.imap_server(piece),
                        (Protocol::Pop3, Direction::Client) => self.pop3_client(piece),
                        (Protocol::Pop3, Direction::Server) => self.pop3_server(piece),
                    };
                    format!("{} [the line did not end]", text.unwrap_or_default())
                }
            };
            self.push(out, direction, Some(text));
        }
    }

    fn push(&self, out: &mut Vec<Record>, direction: Direction, text: Option<String>) {
        if let Some(text) = text {
            out.push(Record { direction, text: self.scrub(text) });
        }
    }

    /// `text` with every known secret replaced.
    pub fn scrub(&self, mut text: String) -> String {
        for secret in &self.secrets {
            if text.contains(secret.expose()) {
                text = text.replace(secret.expose(), REDACTED);
            }
        }
        text
    }

    fn imap_client(&mut self, piece: Piece) -> Option<String> {
        let line = match piece {
            Piece::Line(line) => line,
            Piece::Literal(bytes) | Piece::Body(bytes) => {
                let login = self.imap.command.as_mut().and_then(|command| command.login.as_mut());
                return Some(match login {
                    Some(stage @ Login::User) => {
                        *stage = Login::Password;
                        format!("[{bytes} bytes redacted]")
                    }
                    // Not even the password's length.
                    Some(Login::Password) => REDACTED.into(),
                    None => format!("[{bytes} bytes redacted]"),
                });
            }
        };
        let continues = std::mem::replace(&mut self.imap.client_continues, line.marker.is_some());
        let text = if continues {
            match self.imap.command.as_ref().and_then(|command| command.login) {
                _ if line.text.is_empty() && line.dropped == 0 => None,
                Some(_) => Some(REDACTED.to_string()),
                None => Some(shown(&line)),
            }
        } else if self.imap.sasl.is_some() {
            Some(REDACTED.into())
        } else {
            Some(self.imap_command(&line))
        };
        match line.marker {
            None => self.imap.command = None,
            Some(marker) if marker.synchronising => {
                let tag = self.imap.command.as_ref().map(|command| command.tag.clone()).unwrap_or_default();
                self.imap.pending_literal = Some((tag, marker.length));
            }
            Some(marker) => self.client.start_literal(marker.length),
        }
        text
    }

    /// The first line of a client command.
    fn imap_command(&mut self, line: &Line) -> String {
        let (tag, rest) = token(&line.text);
        let (verb, arguments) = token(rest);
        let mut command = Command { tag: tag.to_vec(), login: None };
        let text = if verb.eq_ignore_ascii_case(b"LOGIN") {
            let (user, rest) = argument(arguments);
            let literal = user.starts_with(b"{") || user.starts_with(b"~{");
            command.login = Some(if literal { Login::User } else { Login::Password });
            let mut text = format!("{} {} {}", escape(tag), escape(verb), escape(user));
            if !rest.is_empty() || line.dropped > 0 {
                text.push(' ');
                text.push_str(REDACTED);
            }
            text
        } else if verb.eq_ignore_ascii_case(b"AUTHENTICATE") {
            self.imap.sasl = Some(tag.to_vec());
            let (mechanism, initial) = token(arguments);
            let mut text = format!("{} {} {}", escape(tag), escape(verb), escape(mechanism));
            if !initial.is_empty() || line.dropped > 0 {
                text.push(' ');
                text.push_str(REDACTED);
            }
            text
        } else {
            shown(line)
        };
        self.imap.command = Some(command);
        text
    }

    fn imap_server(&mut self, piece: Piece) -> Option<String> {
        let line = match piece {
            Piece::Line(line) => line,
            Piece::Literal(bytes) | Piece::Body(bytes) => {
                if let Some(scan) = &mut self.imap.fetch {
                    scan.content_next = false;
                }
                return Some(format!("[{bytes} bytes redacted]"));
            }
        };
        let continues = std::mem::replace(&mut self.imap.server_continues, line.marker.is_some());
        let text = if continues {
            match &mut self.imap.fetch {
                Some(scan) => fetch_items(&line.text, scan),
                None => escape(&line.text),
            }
        } else if line.text.first() == Some(&b'+') {
            // A continuation request: the client's synchronising literal goes now.
            if let Some((_, length)) = self.imap.pending_literal.take() {
                self.client.start_literal(length);
            }
            escape(&line.text)
        } else if is_fetch(&line.text) {
            fetch_items(&line.text, self.imap.fetch.insert(FetchScan::default()))
        } else {
            let (tag, _) = token(&line.text);
            if tag != b"*" {
                if self.imap.sasl.as_deref() == Some(tag) {
                    self.imap.sasl = None;
                }
                if self.imap.pending_literal.as_ref().is_some_and(|(pending, _)| pending == tag) {
                    // The server ended the command instead of accepting its literal, which is
                    // therefore never sent: the client's next line is a new command.
                    self.imap.pending_literal = None;
                    self.imap.client_continues = false;
                    self.imap.command = None;
                }
            }
            escape(&line.text)
        };
        match line.marker {
            Some(marker) => self.server.start_literal(marker.length),
            None => self.imap.fetch = None,
        }
        // The line end after a literal that ended a response says nothing.
        (!(continues && text.is_empty() && line.dropped == 0)).then(|| with_dropped(text, &line))
    }

    fn pop3_client(&mut self, piece: Piece) -> Option<String> {
        let Piece::Line(line) = piece else {
            return None;
        };
        if self.pop3.sasl {
            return Some(REDACTED.into());
        }
        let (verb, arguments) = token(&line.text);
        let upper = verb.to_ascii_uppercase();
        let redact_after = |kept: &[u8], rest: &[u8]| {
            let mut text = escape(verb);
            if !kept.is_empty() {
                text.push(' ');
                text.push_str(&escape(kept));
            }
            if !rest.is_empty() || line.dropped > 0 {
                text.push(' ');
                text.push_str(REDACTED);
            }
            text
        };
        let (text, reply) = match upper.as_slice() {
            b"PASS" => (redact_after(b"", arguments), Pop3Reply::Single),
            b"APOP" => {
                let (user, digest) = token(arguments);
                (redact_after(user, digest), Pop3Reply::Single)
            }
            b"AUTH" => {
                let (mechanism, initial) = token(arguments);
                if mechanism.is_empty() {
                    // `AUTH` alone lists the mechanisms.
                    (shown(&line), Pop3Reply::Listing)
                } else {
                    self.pop3.sasl = true;
                    (redact_after(mechanism, initial), Pop3Reply::Single)
                }
            }
            b"RETR" | b"TOP" => (shown(&line), Pop3Reply::Body),
            b"CAPA" => (shown(&line), Pop3Reply::Listing),
            b"UIDL" | b"LIST" if arguments.is_empty() => (shown(&line), Pop3Reply::Listing),
            _ => (shown(&line), Pop3Reply::Single),
        };
        if self.pop3.pending.len() < MAX_PENDING {
            self.pop3.pending.push_back(reply);
        }
        Some(text)
    }

    fn pop3_server(&mut self, piece: Piece) -> Option<String> {
        let Piece::Line(line) = piece else {
            return None;
        };
        let text = &line.text;
        if self.pop3.listing {
            self.pop3.listing = text != b".";
            return Some(shown(&line));
        }
        let status =
            |word: &[u8]| text.starts_with(word) && matches!(text.get(word.len()), None | Some(b' '));
        let ok = status(b"+OK");
        if ok || status(b"-ERR") {
            // The end of a SASL exchange too (its AUTH is in `pending`).
            self.pop3.sasl = false;
            match self.pop3.pending.pop_front() {
                Some(Pop3Reply::Body) if ok => self.server.start_body(),
                Some(Pop3Reply::Listing) if ok => self.pop3.listing = true,
                _ => {}
            }
        }
        Some(shown(&line))
    }
}

/// A line shown as it is (escaped), with a note of what was cut off.
fn shown(line: &Line) -> String {
    with_dropped(escape(&line.text), line)
}

fn with_dropped(mut text: String, line: &Line) -> String {
    if line.dropped > 0 {
        let _ = write!(text, " [... {} more bytes not shown]", line.dropped);
    }
    text
}

/// The first space-separated token and what follows the space.
fn token(text: &[u8]) -> (&[u8], &[u8]) {
    match text.iter().position(|&b| b == b' ') {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, &[]),
    }
}

/// The first IMAP argument (a quoted string with its quotes, an atom, or a literal marker) and
/// what follows it.
fn argument(text: &[u8]) -> (&[u8], &[u8]) {
    if text.first() == Some(&b'"') {
        let end = quoted_end(text, 0);
        (&text[..end], &text[end..])
    } else {
        let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
        (&text[..end], &text[end..])
    }
}

/// The index just after the quoted string starting at `start` (the end of `text` when it is
/// not closed).
fn quoted_end(text: &[u8], start: usize) -> usize {
    let mut at = start + 1;
    while at < text.len() {
        match text[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    text.len()
}

/// `* n FETCH ...`
fn is_fetch(text: &[u8]) -> bool {
    let (star, rest) = token(text);
    let (number, rest) = token(rest);
    let (name, _) = token(rest);
    star == b"*"
        && !number.is_empty()
        && number.iter().all(u8::is_ascii_digit)
        && name.eq_ignore_ascii_case(b"FETCH")
}

/// A FETCH response line with message content taken out: the value of a body section
/// (`BODY[...]`, `BINARY[...]`, `RFC822`, `RFC822.HEADER`, `RFC822.TEXT`) sent as a quoted
/// string, and the parenthesised `ENVELOPE` and `BODYSTRUCTURE` (subjects, addresses, file
/// names). Values sent as literals are counted by the framer; everything else (UID, FLAGS,
/// RFC822.SIZE, INTERNALDATE, MODSEQ) stays.
fn fetch_items(text: &[u8], scan: &mut FetchScan) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let byte = text[at];
        if scan.skipping > 0 {
            match byte {
                b'"' => at = quoted_end(text, at),
                b'(' => {
                    scan.skipping += 1;
                    at += 1;
                }
                b')' => {
                    scan.skipping -= 1;
                    at += 1;
                }
                _ => at += 1,
            }
            continue;
        }
        match byte {
            b'"' => {
                let end = quoted_end(text, at);
                if std::mem::take(&mut scan.content_next) {
                    let _ = write!(out, "[{} bytes redacted]", (end - at).saturating_sub(2));
                } else {
                    out.push_str(&escape(&text[at..end]));
                }
                scan.structure_next = false;
                at = end;
            }
            b'(' if std::mem::take(&mut scan.structure_next) => {
                out.push_str("[structure redacted]");
                scan.skipping = 1;
                at += 1;
            }
            b' ' => {
                out.push(' ');
                at += 1;
            }
            b'(' | b')' => {
                out.push(char::from(byte));
                scan.content_next = false;
                scan.structure_next = false;
                at += 1;
            }
            _ => {
                let end = atom_end(text, at);
                let atom = &text[at..end];
                out.push_str(&escape(atom));
                // A literal marker ends the line: the literal is the value.
                if !atom.starts_with(b"{") && !atom.starts_with(b"~{") {
                    let name = atom.to_ascii_uppercase();
                    let name = name.split(|&b| b == b'<').next().unwrap_or_default();
                    scan.content_next = name.starts_with(b"BODY[")
                        || name.starts_with(b"BINARY[")
                        || matches!(name, b"RFC822" | b"RFC822.HEADER" | b"RFC822.TEXT");
                    scan.structure_next = matches!(name, b"ENVELOPE" | b"BODYSTRUCTURE" | b"BODY");
                }
                at = end;
            }
        }
    }
    out
}

/// The end of an atom or item name starting at `start`: a space, parenthesis or quote ends it,
/// except inside `[...]` (`BODY[HEADER.FIELDS (DATE FROM)]`).
fn atom_end(text: &[u8], start: usize) -> usize {
    let mut depth = 0u32;
    for (offset, &byte) in text[start..].iter().enumerate() {
        match byte {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b' ' | b'(' | b')' | b'"' if depth == 0 => return start + offset,
            _ => {}
        }
    }
    text.len()
}

/// Bytes as text for the trace: UTF-8 as it is, control characters and invalid bytes as `\xNN`
/// (a trace line is one line, whatever a server sends).
pub(super) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            if ch.is_control() {
                let _ = write!(out, "\\x{:02x}", u32::from(ch));
            } else {
                out.push(ch);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}
