//! A scripted in-process IMAP server with an in-memory store, for faults a real server cannot be
//! made to produce on demand: refusals with every response code, throttling, BYE, cuts after a
//! message was stored, no UIDPLUS or a bogus APPENDUID, a UIDVALIDITY change, cuts in the middle of
//! a FETCH response. It speaks just the IMAP our client uses (LOGIN, LIST, STATUS, SELECT/EXAMINE,
//! UID SEARCH, UID FETCH, APPEND with synchronising or non-synchronising literals, CREATE,
//! UID STORE of flags, NOOP, LOGOUT) and answers commands strictly in order, like a real server under pipelining.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mailmove_core::{fingerprint, Fingerprint};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpListener;

use super::tokens::{in_set, quote, tokens};

/// What the server does with one APPEND (after reading its literal).
#[derive(Debug, Clone)]
pub enum Action {
    /// Store it and answer OK (with APPENDUID under UIDPLUS).
    Store,
    /// Do not store it; answer with this tagged text (e.g. `NO [TOOBIG] too big`).
    Answer(String),
    /// Store it, then drop the connection before the answer goes out.
    StoreThenCut,
    /// Drop the connection without storing.
    Cut,
    /// Send `* BYE text` and close, without storing.
    Bye(String),
}

/// One stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    pub uid: u32,
    pub flags: String,
    pub date: String,
    pub body: Vec<u8>,
}

/// One mailbox.
#[derive(Debug, Clone)]
pub struct Mailbox {
    pub validity: u32,
    pub next_uid: u32,
    pub messages: Vec<Stored>,
}

/// Decides the fate of APPEND number `n` (0-based, counted over all connections) of `body`.
pub type Script = Box<dyn FnMut(usize, &[u8]) -> Action + Send>;

/// A piece of a hostile answer.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Sent at once.
    Bytes(Vec<u8>),
    /// Sent one byte at a time with this pause before each (a slow-loris).
    Trickle(Vec<u8>, std::time::Duration),
    /// Nothing more: the connection is closed.
    Close,
}

impl Chunk {
    pub fn text(text: impl AsRef<[u8]>) -> Chunk {
        Chunk::Bytes(text.as_ref().to_vec())
    }
}

/// Replaces the server's answer to a command: called with the tag, the upper-cased command
/// (`UID FETCH`, `LIST`) and its arguments; `Some(chunks)` is sent instead of the normal answer.
pub type Hook = Box<dyn FnMut(&str, &str, &str) -> Option<Vec<Chunk>> + Send>;

/// The server's state, shared with the test.
pub struct State {
    /// Capabilities after the greeting and login (IMAP4rev1 is always there).
    pub caps: Vec<String>,
    pub mailboxes: BTreeMap<String, Mailbox>,
    pub appends: usize,
    pub script: Script,
    /// Most messages stored over all mailboxes; beyond, APPEND gets `NO [OVERQUOTA]`.
    pub quota: Option<usize>,
    /// Answer every APPEND with this (wrong) APPENDUID instead of the real one.
    pub bogus_appenduid: bool,
    /// Cut the connection once this many bytes of FETCH responses were sent, one entry per cut
    /// (counted over all connections).
    pub fetch_cuts: Vec<usize>,
    /// When set, `(pieces, pause)`: every FETCH response goes out in that many pieces of equal
    /// length with the pause between two (a reader then waits in the middle of a literal).
    pub fetch_pace: Option<(usize, std::time::Duration)>,
    pub fetch_bytes: usize,
    /// Answer UID FETCH with this tagged text, once per entry (throttling of reads).
    pub fetch_answers: Vec<String>,
    pub logins: usize,
    /// The only OAuth2 token `AUTHENTICATE XOAUTH2` accepts (offer `SASL-IR` and `AUTH=XOAUTH2`).
    pub valid_token: Option<String>,
    /// Tokens presented with `AUTHENTICATE XOAUTH2`, in order.
    pub tokens_seen: Vec<String>,
    /// Answers that replace the normal ones (hostile servers).
    pub hook: Option<Hook>,
    /// The greeting, instead of a prompt `* OK`.
    pub greeting: Option<Vec<Chunk>>,
    /// Mailbox names compare without case (as on Exchange or Gmail).
    pub case_insensitive: bool,
    /// Every command received, as `COMMAND args`.
    pub commands: Vec<String>,
    /// Flags an APPEND gives that the server does not keep (Exchange forgets `\\Flagged`); a
    /// `UID STORE` sets them.
    pub forget_at_append: Vec<String>,
    next_validity: u32,
}

impl State {
    fn stored_total(&self) -> usize {
        self.mailboxes.values().map(|m| m.messages.len()).sum()
    }

    /// Adds a mailbox with these bodies (a source to read from).
    pub fn add(&mut self, name: &str, bodies: &[Vec<u8>]) {
        self.next_validity += 1;
        let mut mailbox = Mailbox { validity: self.next_validity, next_uid: 1, messages: Vec::new() };
        for body in bodies {
            mailbox.messages.push(Stored {
                uid: mailbox.next_uid,
                flags: "\\Seen".into(),
                date: "02-Jan-2020 10:00:00 +0100".into(),
                body: body.clone(),
            });
            mailbox.next_uid += 1;
        }
        self.mailboxes.insert(name.to_string(), mailbox);
    }

    /// A new UIDVALIDITY for every mailbox, with the messages renumbered in reverse order, so
    /// that every old UID now names another message.
    pub fn renumber(&mut self) {
        for mailbox in self.mailboxes.values_mut() {
            self.next_validity += 1;
            mailbox.validity = self.next_validity + 1000;
            mailbox.messages.reverse();
            for (index, message) in mailbox.messages.iter_mut().enumerate() {
                message.uid = index as u32 + 1;
            }
            mailbox.next_uid = mailbox.messages.len() as u32 + 1;
        }
    }

    /// The name under which `name` is stored (itself, or its case twin on a case-insensitive server).
    pub fn resolve(&self, name: &str) -> String {
        if self.case_insensitive {
            if let Some(existing) = self.mailboxes.keys().find(|n| n.eq_ignore_ascii_case(name)) {
                return existing.clone();
            }
        }
        name.to_string()
    }

    /// (mailbox, strict fingerprint) → count.
    pub fn contents(&self) -> BTreeMap<(String, Fingerprint), usize> {
        let mut out = BTreeMap::new();
        for (name, mailbox) in &self.mailboxes {
            for message in &mailbox.messages {
                *out.entry((name.clone(), fingerprint::strict_of_bytes(&message.body))).or_default() += 1;
            }
        }
        out
    }
}

/// A running fake server.
pub struct Fake {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl Fake {
    /// Starts a server with these capabilities (e.g. `["LITERAL+", "UIDPLUS"]`) and an empty INBOX.
    pub async fn start(caps: &[&str]) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut state = State {
            caps: caps.iter().map(|c| c.to_string()).collect(),
            mailboxes: BTreeMap::new(),
            appends: 0,
            script: Box::new(|_, _| Action::Store),
            quota: None,
            bogus_appenduid: false,
            fetch_cuts: Vec::new(),
            fetch_pace: None,
            fetch_bytes: 0,
            fetch_answers: Vec::new(),
            logins: 0,
            valid_token: None,
            tokens_seen: Vec::new(),
            hook: None,
            greeting: None,
            case_insensitive: false,
            commands: Vec::new(),
            forget_at_append: Vec::new(),
            next_validity: 100,
        };
        state.add("INBOX", &[]);
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                // Answers go out as soon as written, as a real server's do (no Nagle delay on
                // thousands of pipelined small answers).
                let _ = socket.set_nodelay(true);
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, state).await;
                });
            }
        });
        Fake { port, state }
    }

    /// `imap://u@127.0.0.1:PORT/?tls=none&...` plus `extra` options.
    /// (A `timeout=` in `extra` replaces the default of 5 s: URL keys may be given only once.)
    pub fn url(&self, extra: &str) -> String {
        let timeout = if extra.contains("timeout=") { "" } else { "&timeout=5" };
        format!("imap://u@127.0.0.1:{}/?tls=none&auth=login{timeout}{extra}", self.port)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

/// The end of a session: the test asked for a cut, or the peer went away.
struct Closed;

impl From<std::io::Error> for Closed {
    fn from(_: std::io::Error) -> Self {
        Closed
    }
}

async fn serve(socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) -> Result<(), Closed> {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    let caps = || format!("IMAP4rev1 {}", state.lock().unwrap().caps.join(" "));
    let greeting = state.lock().unwrap().greeting.clone();
    match greeting {
        Some(chunks) => send_chunks(&mut write, chunks).await?,
        None => write.write_all(format!("* OK [CAPABILITY {}] fake ready\r\n", caps()).as_bytes()).await?,
    }
    let mut selected: Option<String> = None;
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(Closed);
        }
        let mut literal: Option<Vec<u8>> = None;
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if let Some(open) = text.rfind('{').filter(|_| text.ends_with('}')) {
            let spec = &text[open + 1..text.len() - 1];
            let sync = !spec.ends_with('+');
            let length: usize = spec.trim_end_matches('+').parse().unwrap_or(0);
            if sync {
                write.write_all(b"+ go ahead\r\n").await?;
            }
            let mut data = vec![0u8; length];
            reader.read_exact(&mut data).await?;
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest).await?;
            literal = Some(data);
        }
        let (tag, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        let (command, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut command = command.to_ascii_uppercase();
        let mut args = args.to_string();
        if command == "UID" {
            let (sub, more) = args.split_once(' ').unwrap_or((args.as_str(), ""));
            command = format!("UID {}", sub.to_ascii_uppercase());
            args = more.to_string();
        }
        let mut tokens = tokens(&args);
        let hooked = {
            let mut state = state.lock().unwrap();
            state.commands.push(format!("{command} {args}"));
            if let Some(first) = tokens.first_mut().filter(|_| command != "LIST") {
                *first = state.resolve(first);
            }
            match state.hook.as_mut() {
                Some(hook) => hook(tag, &command, &args),
                None => None,
            }
        };
        if let Some(chunks) = hooked {
            if command == "EXAMINE" || command == "SELECT" {
                selected = tokens.first().cloned();
            }
            send_chunks(&mut write, chunks).await?;
            continue;
        }
        let reply = match command.as_str() {
            "CAPABILITY" => format!("* CAPABILITY {}\r\n{tag} OK done\r\n", caps()),
            "LOGIN" => {
                state.lock().unwrap().logins += 1;
                format!("{tag} OK [CAPABILITY {}] logged in\r\n", caps())
            }
            "AUTHENTICATE" => {
                use base64::Engine;
                let initial = tokens.get(1).cloned().unwrap_or_default();
                let decoded = base64::engine::general_purpose::STANDARD.decode(initial).unwrap_or_default();
                let text = String::from_utf8_lossy(&decoded).to_string();
                let token =
                    text.split("auth=Bearer ").nth(1).unwrap_or("").trim_end_matches('\x01').to_string();
                let accepted = {
                    let mut state = state.lock().unwrap();
                    state.tokens_seen.push(token.clone());
                    let accepted = state.valid_token.as_deref() == Some(token.as_str());
                    if accepted {
                        state.logins += 1;
                    }
                    accepted
                };
                if accepted {
                    format!("{tag} OK [CAPABILITY {}] authenticated\r\n", caps())
                } else {
                    // The XOAUTH2 error challenge; the client answers with an empty line.
                    write.write_all(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n").await?;
                    let mut answer = Vec::new();
                    reader.read_until(b'\n', &mut answer).await?;
                    format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n")
                }
            }
            "NOOP" => format!("{tag} OK done\r\n"),
            "LOGOUT" => {
                write.write_all(format!("* BYE bye\r\n{tag} OK done\r\n").as_bytes()).await?;
                return Ok(());
            }
            "LIST" => {
                let pattern = tokens.get(1).cloned().unwrap_or_default();
                let state = state.lock().unwrap();
                let mut out = String::new();
                if pattern.is_empty() {
                    out.push_str("* LIST (\\Noselect) \"/\" \"\"\r\n");
                } else {
                    let wanted = |n: &String| {
                        pattern == "*"
                            || **n == pattern
                            || (state.case_insensitive && n.eq_ignore_ascii_case(&pattern))
                    };
                    for name in state.mailboxes.keys().filter(|n| wanted(n)) {
                        out.push_str(&format!("* LIST () \"/\" {}\r\n", quote(name)));
                    }
                }
                format!("{out}{tag} OK done\r\n")
            }
            "STATUS" => {
                let name = tokens.first().cloned().unwrap_or_default();
                let state = state.lock().unwrap();
                match state.mailboxes.get(&name) {
                    Some(m) => format!(
                        "* STATUS {} (MESSAGES {} UIDNEXT {} UIDVALIDITY {})\r\n{tag} OK done\r\n",
                        quote(&name),
                        m.messages.len(),
                        m.next_uid,
                        m.validity
                    ),
                    None => format!("{tag} NO [NONEXISTENT] no such mailbox\r\n"),
                }
            }
            "SELECT" | "EXAMINE" => {
                let name = tokens.first().cloned().unwrap_or_default();
                let state = state.lock().unwrap();
                match state.mailboxes.get(&name) {
                    Some(m) => {
                        selected = Some(name);
                        format!(
                            "* {} EXISTS\r\n* OK [UIDVALIDITY {}] ok\r\n* OK [UIDNEXT {}] ok\r\n* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft \\*)] ok\r\n{tag} OK [READ-WRITE] done\r\n",
                            m.messages.len(),
                            m.validity,
                            m.next_uid
                        )
                    }
                    None => {
                        selected = None;
                        format!("{tag} NO [NONEXISTENT] no such mailbox\r\n")
                    }
                }
            }
            "CREATE" => {
                let name = tokens.first().cloned().unwrap_or_default();
                let mut state = state.lock().unwrap();
                if state.mailboxes.contains_key(&name) {
                    format!("{tag} NO [ALREADYEXISTS] exists\r\n")
                } else {
                    state.add(&name, &[]);
                    format!("{tag} OK created\r\n")
                }
            }
            "UID SEARCH" => {
                let state = state.lock().unwrap();
                match selected.as_ref().and_then(|name| state.mailboxes.get(name)) {
                    None => format!("{tag} BAD no mailbox selected\r\n"),
                    Some(m) => {
                        let max = m.messages.iter().map(|s| s.uid).max().unwrap_or(0);
                        let set = if tokens.first().is_some_and(|t| t.eq_ignore_ascii_case("UID")) {
                            tokens.get(1).cloned().unwrap_or_default()
                        } else {
                            "1:*".to_string()
                        };
                        let uids: Vec<String> = m
                            .messages
                            .iter()
                            .filter(|s| in_set(&set, s.uid, max))
                            .map(|s| s.uid.to_string())
                            .collect();
                        format!("* SEARCH {}\r\n{tag} OK done\r\n", uids.join(" "))
                    }
                }
            }
            "UID FETCH" => {
                let answer = {
                    let mut state = state.lock().unwrap();
                    (!state.fetch_answers.is_empty()).then(|| state.fetch_answers.remove(0))
                };
                if let Some(answer) = answer {
                    if let Some(bye) = answer.strip_prefix("* BYE") {
                        write.write_all(format!("* BYE{bye}\r\n").as_bytes()).await?;
                        return Err(Closed);
                    }
                    format!("{tag} {answer}\r\n")
                } else {
                    fetch(&state, selected.as_deref(), &tokens, tag, &mut write).await?
                }
            }
            "APPEND" => append(&state, &tokens, literal, tag, &mut write).await?,
            "UID STORE" => store(&state, selected.as_deref(), &tokens, tag),
            _ => format!("{tag} BAD unknown command\r\n"),
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// Writes hostile chunks; `Err(Closed)` after [`Chunk::Close`].
async fn send_chunks(write: &mut OwnedWriteHalf, chunks: Vec<Chunk>) -> Result<(), Closed> {
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(bytes) => write.write_all(&bytes).await?,
            Chunk::Trickle(bytes, pause) => {
                for byte in bytes {
                    tokio::time::sleep(pause).await;
                    write.write_all(&[byte]).await?;
                }
            }
            Chunk::Close => return Err(Closed),
        }
    }
    Ok(())
}

async fn fetch(
    state: &Arc<Mutex<State>>,
    selected: Option<&str>,
    tokens: &[String],
    tag: &str,
    write: &mut OwnedWriteHalf,
) -> Result<String, Closed> {
    let set = tokens.first().cloned().unwrap_or_default();
    let items = tokens.get(1).cloned().unwrap_or_default().to_ascii_uppercase();
    let responses: Vec<Vec<u8>> = {
        let state = state.lock().unwrap();
        let Some(mailbox) = selected.and_then(|name| state.mailboxes.get(name)) else {
            return Ok(format!("{tag} BAD no mailbox selected\r\n"));
        };
        let max = mailbox.messages.iter().map(|s| s.uid).max().unwrap_or(0);
        mailbox
            .messages
            .iter()
            .enumerate()
            .filter(|(_, s)| in_set(&set, s.uid, max))
            .map(|(index, s)| {
                let mut out = format!("* {} FETCH (UID {}", index + 1, s.uid).into_bytes();
                if items.contains("FLAGS") {
                    out.extend_from_slice(format!(" FLAGS ({})", s.flags).as_bytes());
                }
                if items.contains("INTERNALDATE") {
                    out.extend_from_slice(format!(" INTERNALDATE {}", quote(&s.date)).as_bytes());
                }
                if items.contains("RFC822.SIZE") {
                    out.extend_from_slice(format!(" RFC822.SIZE {}", s.body.len()).as_bytes());
                }
                if items.contains("BODY.PEEK[]") {
                    out.extend_from_slice(format!(" BODY[] {{{}}}\r\n", s.body.len()).as_bytes());
                    out.extend_from_slice(&s.body);
                }
                out.extend_from_slice(b")\r\n");
                out
            })
            .collect()
    };
    for response in responses {
        let cut = {
            let mut state = state.lock().unwrap();
            let before = state.fetch_bytes;
            state.fetch_bytes += response.len();
            match state.fetch_cuts.first().copied() {
                Some(at) if at < state.fetch_bytes => {
                    state.fetch_cuts.remove(0);
                    Some(at.saturating_sub(before))
                }
                _ => None,
            }
        };
        if let Some(offset) = cut {
            write.write_all(&response[..offset]).await?;
            return Err(Closed);
        }
        let (pieces, pause) = state.lock().unwrap().fetch_pace.unwrap_or((1, std::time::Duration::ZERO));
        for (index, piece) in response.chunks(response.len().div_ceil(pieces.max(1))).enumerate() {
            if index > 0 {
                tokio::time::sleep(pause).await;
            }
            write.write_all(piece).await?;
        }
    }
    Ok(format!("{tag} OK done\r\n"))
}

async fn append(
    state: &Arc<Mutex<State>>,
    tokens: &[String],
    literal: Option<Vec<u8>>,
    tag: &str,
    write: &mut OwnedWriteHalf,
) -> Result<String, Closed> {
    let name = tokens.first().cloned().unwrap_or_default();
    let body = literal.unwrap_or_default();
    let flags = tokens.get(1).filter(|t| t.starts_with('(')).cloned().unwrap_or_default();
    let flags = flags.trim_start_matches('(').trim_end_matches(')').to_string();
    let forgotten = state.lock().unwrap().forget_at_append.clone();
    let flags: Vec<&str> =
        flags.split_whitespace().filter(|flag| !forgotten.iter().any(|f| f == flag)).collect();
    let flags = flags.join(" ");
    let date = tokens
        .iter()
        .skip(1)
        .find(|t| !t.starts_with('(') && !t.starts_with('{'))
        .cloned()
        .unwrap_or_default();
    // Err(Some(text)): BYE then close; Err(None): close.
    let outcome: Result<String, Option<String>> = {
        let mut state = state.lock().unwrap();
        if !state.mailboxes.contains_key(&name) {
            return Ok(format!("{tag} NO [TRYCREATE] no such mailbox\r\n"));
        }
        let n = state.appends;
        state.appends += 1;
        let action = (state.script)(n, &body);
        let over_quota = state.quota.is_some_and(|quota| state.stored_total() >= quota);
        let store = |state: &mut State| -> String {
            let uidplus = state.caps.iter().any(|c| c == "UIDPLUS");
            let bogus = state.bogus_appenduid;
            let mailbox = state.mailboxes.get_mut(&name).expect("checked above");
            let uid = mailbox.next_uid;
            mailbox.next_uid += 1;
            let date = if date.is_empty() { "01-Jan-2020 00:00:00 +0000".to_string() } else { date.clone() };
            mailbox.messages.push(Stored { uid, flags: flags.clone(), date, body: body.clone() });
            match (uidplus, bogus) {
                (false, _) => format!("{tag} OK stored\r\n"),
                (true, false) => format!("{tag} OK [APPENDUID {} {uid}] stored\r\n", mailbox.validity),
                (true, true) => format!("{tag} OK [APPENDUID 1 1] stored\r\n"),
            }
        };
        match action {
            _ if over_quota => Ok(format!("{tag} NO [OVERQUOTA] quota exceeded\r\n")),
            Action::Store => Ok(store(&mut state)),
            Action::Answer(text) => Ok(format!("{tag} {text}\r\n")),
            Action::StoreThenCut => {
                store(&mut state);
                Err(None)
            }
            Action::Cut => Err(None),
            Action::Bye(text) => Err(Some(text)),
        }
    };
    match outcome {
        Ok(reply) => Ok(reply),
        Err(Some(text)) => {
            write.write_all(format!("* BYE {text}\r\n").as_bytes()).await?;
            Err(Closed)
        }
        Err(None) => Err(Closed),
    }
}

/// `UID STORE set ±FLAGS[.SILENT] (flags)` in the selected mailbox.
fn store(state: &Arc<Mutex<State>>, selected: Option<&str>, tokens: &[String], tag: &str) -> String {
    let mut state = state.lock().unwrap();
    let Some(mailbox) = selected.and_then(|name| state.mailboxes.get_mut(name)) else {
        return format!("{tag} BAD no mailbox selected\r\n");
    };
    let set = tokens.first().cloned().unwrap_or_default();
    let item = tokens.get(1).cloned().unwrap_or_default().to_ascii_uppercase();
    let values = tokens.get(2).cloned().unwrap_or_default();
    let values: Vec<&str> = values.trim_start_matches('(').trim_end_matches(')').split_whitespace().collect();
    let max = mailbox.messages.iter().map(|s| s.uid).max().unwrap_or(0);
    for message in mailbox.messages.iter_mut().filter(|s| in_set(&set, s.uid, max)) {
        let mut flags: Vec<String> = message.flags.split_whitespace().map(str::to_string).collect();
        if item.starts_with('-') {
            flags.retain(|flag| !values.contains(&flag.as_str()));
        } else if item.starts_with('+') {
            for value in &values {
                if !flags.iter().any(|flag| flag == value) {
                    flags.push(value.to_string());
                }
            }
        } else {
            flags = values.iter().map(|value| value.to_string()).collect();
        }
        message.flags = flags.join(" ");
    }
    format!("{tag} OK done\r\n")
}
