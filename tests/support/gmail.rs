//! A scripted in-process server that behaves like Gmail's IMAP (built from Google's IMAP extension
//! documentation and imapsync's FAQ.Gmail.txt, ../shared/PROVIDERS.md): one store of messages,
//! each folder a label's view of it.
//!
//! * `X-GM-EXT-1`: `X-GM-MSGID` and `X-GM-LABELS` in FETCH, `+X-GM-LABELS` in STORE.
//! * Folders: INBOX (`\Inbox`), user labels, `[Gmail]` (`\Noselect`) with `All Mail` (`\All`,
//!   every message but Spam and Trash), `Sent Mail` (`\Sent`), `Drafts` (`\Draft`), `Starred`
//!   (`\Flagged`, a view of the flag), `Important`, `Spam` (`\Junk`), `Trash` (`\Trash`).
//! * APPEND of a message the account holds stores nothing new: the message gets the folder's
//!   label and the answer names its UID there. `UID COPY` adds the target's label. Names under
//!   `[Gmail]/` cannot be created.
//! * `APPENDLIMIT=35651584`; a message over it gets `NO [TOOBIG]`.
//! * The APPENDs a test names ([`Account::throttle_appends`]) get `NO [THROTTLED]` (Gmail's answer
//!   to too much too fast) and store nothing.
//! * `X-GM-LABELS` in a folder leaves out that folder's own label (a client must not depend on
//!   seeing it).
//!
//! It speaks what mailmove's client sends: CAPABILITY, LOGIN, LIST, STATUS, SELECT/EXAMINE,
//! UID SEARCH, UID FETCH, APPEND (literals), CREATE, SUBSCRIBE, UID COPY, UID STORE, NOOP, LOGOUT.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[path = "../../crates/mailmove-imap/tests/common/tokens.rs"]
mod imap_tokens;
use imap_tokens::{in_set, quote, tokens};

/// Gmail's advertised APPENDLIMIT.
pub const APPEND_LIMIT: usize = 35_651_584;

/// One message of the account.
#[derive(Debug, Clone)]
pub struct GmailMessage {
    pub msgid: u64,
    pub body: Vec<u8>,
    pub flags: BTreeSet<String>,
    pub labels: BTreeSet<String>,
    pub date: String,
}

/// One folder: its UIDs, each naming a message.
#[derive(Debug, Clone)]
struct Folder {
    validity: u32,
    next_uid: u32,
    entries: Vec<(u32, usize)>,
    attribute: &'static str,
}

/// The account.
pub struct Account {
    pub messages: Vec<GmailMessage>,
    folders: BTreeMap<String, Folder>,
    /// APPENDs received, and the bytes they carried.
    pub appends: usize,
    pub appended_bytes: usize,
    /// APPENDs of a message the account held already (stored nothing).
    pub duplicate_appends: usize,
    pub commands: Vec<String>,
    /// The APPENDs (numbered from 0 over all connections) answered `NO [THROTTLED]`.
    pub throttle_appends: Vec<usize>,
    /// Labels whose folders LIST does not show (Gmail's "Show in IMAP" unchecked).
    pub hidden: BTreeSet<String>,
    next_validity: u32,
}

/// The system folders: name, SPECIAL-USE attribute, the label they show.
const SYSTEM: [(&str, &str, Option<&str>); 8] = [
    ("INBOX", "", Some("\\Inbox")),
    ("[Gmail]/All Mail", "\\All", None),
    ("[Gmail]/Sent Mail", "\\Sent", Some("\\Sent")),
    ("[Gmail]/Drafts", "\\Drafts", Some("\\Draft")),
    ("[Gmail]/Starred", "\\Flagged", None),
    ("[Gmail]/Important", "\\Important", Some("\\Important")),
    ("[Gmail]/Spam", "\\Junk", Some("\\Spam")),
    ("[Gmail]/Trash", "\\Trash", Some("\\Trash")),
];

impl Account {
    fn new() -> Self {
        let mut account = Account {
            messages: Vec::new(),
            folders: BTreeMap::new(),
            appends: 0,
            appended_bytes: 0,
            duplicate_appends: 0,
            commands: Vec::new(),
            throttle_appends: Vec::new(),
            hidden: BTreeSet::new(),
            next_validity: 1,
        };
        for (name, attribute, _) in SYSTEM {
            account.create(name, attribute);
        }
        account
    }

    fn create(&mut self, name: &str, attribute: &'static str) {
        self.next_validity += 1;
        let folder = Folder { validity: self.next_validity, next_uid: 1, entries: Vec::new(), attribute };
        self.folders.insert(name.to_string(), folder);
    }

    /// The label a folder shows (`None` for All Mail and Starred, which are views).
    fn label_of(name: &str) -> Option<String> {
        match SYSTEM.iter().find(|(system, _, _)| *system == name) {
            Some((_, _, label)) => label.map(str::to_string),
            None => Some(name.to_string()),
        }
    }

    /// The folder a label shows.
    fn folder_of(label: &str) -> String {
        SYSTEM
            .iter()
            .find(|(_, _, shown)| shown.is_some_and(|shown| shown.eq_ignore_ascii_case(label)))
            .map(|(name, _, _)| name.to_string())
            .unwrap_or_else(|| label.to_string())
    }

    /// Puts message `index` in `folder` (once); returns its UID there.
    fn put(&mut self, index: usize, folder: &str) -> u32 {
        if !self.folders.contains_key(folder) {
            self.create(folder, "");
        }
        if let Some(label) = Self::label_of(folder) {
            self.messages[index].labels.insert(label);
        }
        let entry = self.folders.get_mut(folder).expect("created");
        if let Some((uid, _)) = entry.entries.iter().find(|(_, at)| *at == index) {
            return *uid;
        }
        let uid = entry.next_uid;
        entry.next_uid += 1;
        entry.entries.push((uid, index));
        uid
    }

    /// A new message under these labels (`\Inbox`, `\Sent`, `Work`...) with these flags.
    pub fn add(&mut self, body: &[u8], labels: &[&str], flags: &[&str]) -> usize {
        let index = self.messages.len();
        self.messages.push(GmailMessage {
            msgid: 1_600_000_000_000_000_000 + index as u64,
            body: body.to_vec(),
            flags: flags.iter().map(|flag| flag.to_string()).collect(),
            labels: BTreeSet::new(),
            date: "02-Jan-2020 10:00:00 +0100".into(),
        });
        let hidden = labels.iter().any(|label| *label == "\\Spam" || *label == "\\Trash");
        if !hidden {
            self.put(index, "[Gmail]/All Mail");
        }
        if flags.contains(&"\\Flagged") {
            self.put(index, "[Gmail]/Starred");
        }
        for label in labels {
            self.put(index, &Self::folder_of(label));
        }
        index
    }

    /// Each message's body and its labels (the account's state, as a test compares it).
    pub fn labels(&self) -> Vec<(Vec<u8>, BTreeSet<String>)> {
        self.messages.iter().map(|m| (m.body.clone(), m.labels.clone())).collect()
    }

    /// The bodies in a folder, in UID order.
    pub fn folder(&self, name: &str) -> Vec<Vec<u8>> {
        self.folders
            .get(name)
            .map(|folder| folder.entries.iter().map(|(_, at)| self.messages[*at].body.clone()).collect())
            .unwrap_or_default()
    }

    /// The folders that hold messages.
    pub fn folder_names(&self) -> Vec<String> {
        self.folders.iter().filter(|(_, f)| !f.entries.is_empty()).map(|(name, _)| name.clone()).collect()
    }

    fn resolve(&self, name: &str) -> String {
        if name.eq_ignore_ascii_case("INBOX") {
            return "INBOX".into();
        }
        name.to_string()
    }
}

/// A running Gmail look-alike.
pub struct FakeGmail {
    pub port: u16,
    pub account: Arc<Mutex<Account>>,
}

impl FakeGmail {
    pub async fn start() -> FakeGmail {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let account = Arc::new(Mutex::new(Account::new()));
        let shared = account.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                let account = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, account).await;
                });
            }
        });
        FakeGmail { port, account }
    }

    /// `imap://u@127.0.0.1:PORT/?tls=none&auth=login` plus `extra`.
    pub fn url(&self, extra: &str) -> String {
        format!("imap://u@127.0.0.1:{}/?tls=none&auth=login&timeout=10{extra}", self.port)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Account) -> T) -> T {
        f(&mut self.account.lock().unwrap())
    }
}

const CAPABILITIES: &str =
    "IMAP4rev1 UIDPLUS X-GM-EXT-1 SPECIAL-USE LITERAL+ APPENDLIMIT=35651584 ID NAMESPACE CHILDREN";

/// The items of a parenthesised list (`(\Seen "a b")` → `\Seen`, `a b`).
fn list_items(list: &str) -> Vec<String> {
    tokens(list.trim_start_matches('(').trim_end_matches(')'))
}

async fn serve(socket: tokio::net::TcpStream, account: Arc<Mutex<Account>>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(format!("* OK [CAPABILITY {CAPABILITIES}] Gimap ready\r\n").as_bytes()).await?;
    let mut selected: Option<String> = None;
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let mut literal: Option<Vec<u8>> = None;
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if let Some(open) = text.rfind('{').filter(|_| text.ends_with('}')) {
            let spec = &text[open + 1..text.len() - 1];
            let length: usize = spec.trim_end_matches('+').parse().unwrap_or(0);
            if !spec.ends_with('+') {
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
        let tokens = tokens(&args);
        let (reply, bye) = {
            let mut account = account.lock().unwrap();
            account.commands.push(format!("{command} {args}"));
            let name = tokens.first().map(|name| account.resolve(name)).unwrap_or_default();
            let reply = match command.as_str() {
                "CAPABILITY" => format!("* CAPABILITY {CAPABILITIES}\r\n{tag} OK done\r\n"),
                "LOGIN" => format!("{tag} OK [CAPABILITY {CAPABILITIES}] u authenticated (Success)\r\n"),
                "NOOP" | "ID" | "SUBSCRIBE" | "UNSUBSCRIBE" => format!("{tag} OK Success\r\n"),
                "NAMESPACE" => format!("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n{tag} OK Success\r\n"),
                "LOGOUT" => format!("* BYE LOGOUT Requested\r\n{tag} OK 73 good day\r\n"),
                "LIST" => {
                    let pattern = tokens.get(1).cloned().unwrap_or_default();
                    let mut out = String::new();
                    if pattern.is_empty() {
                        out.push_str("* LIST (\\Noselect) \"/\" \"\"\r\n");
                    } else {
                        if pattern == "*" {
                            out.push_str("* LIST (\\HasChildren \\Noselect) \"/\" \"[Gmail]\"\r\n");
                        }
                        for (folder_name, folder) in &account.folders {
                            if account.hidden.contains(folder_name) {
                                continue;
                            }
                            if pattern == "*" || *folder_name == pattern {
                                let attribute = if folder.attribute.is_empty() {
                                    "\\HasNoChildren".to_string()
                                } else {
                                    format!("\\HasNoChildren {}", folder.attribute)
                                };
                                out.push_str(&format!(
                                    "* LIST ({attribute}) \"/\" {}\r\n",
                                    quote(folder_name)
                                ));
                            }
                        }
                    }
                    format!("{out}{tag} OK Success\r\n")
                }
                "STATUS" => match account.folders.get(&name) {
                    Some(folder) => format!(
                        "* STATUS {} (MESSAGES {} UIDNEXT {} UIDVALIDITY {})\r\n{tag} OK Success\r\n",
                        quote(&name),
                        folder.entries.len(),
                        folder.next_uid,
                        folder.validity
                    ),
                    None => format!("{tag} NO [NONEXISTENT] Unknown Mailbox: {name}\r\n"),
                },
                "SELECT" | "EXAMINE" => match account.folders.get(&name) {
                    Some(folder) => {
                        selected = Some(name.clone());
                        let access = if command == "SELECT" { "READ-WRITE" } else { "READ-ONLY" };
                        format!(
                        "* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen)\r\n* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen \\*)] Flags permitted.\r\n* OK [UIDVALIDITY {}] UIDs valid.\r\n* {} EXISTS\r\n* 0 RECENT\r\n* OK [UIDNEXT {}] Predicted next UID.\r\n{tag} OK [{access}] {name} selected. (Success)\r\n",
                        folder.validity,
                        folder.entries.len(),
                        folder.next_uid
                    )
                    }
                    None => {
                        selected = None;
                        format!("{tag} NO [NONEXISTENT] Unknown Mailbox: {name}\r\n")
                    }
                },
                "CREATE" => {
                    if name.starts_with("[Gmail]/") || account.folders.contains_key(&name) {
                        format!("{tag} NO [CANNOT] Folder name conflicts with existing folder name. (Failure)\r\n")
                    } else {
                        account.create(&name, "");
                        format!("{tag} OK Success\r\n")
                    }
                }
                "UID SEARCH" => match selected.as_ref().and_then(|name| account.folders.get(name)) {
                    None => format!("{tag} BAD no mailbox selected\r\n"),
                    Some(folder) => {
                        let max = folder.entries.iter().map(|(uid, _)| *uid).max().unwrap_or(0);
                        let set = match tokens.first() {
                            Some(first) if first.eq_ignore_ascii_case("UID") => {
                                tokens.get(1).cloned().unwrap_or_default()
                            }
                            _ => "1:*".to_string(),
                        };
                        let uids: Vec<String> = folder
                            .entries
                            .iter()
                            .filter(|(uid, _)| in_set(&set, *uid, max))
                            .map(|(uid, _)| uid.to_string())
                            .collect();
                        format!("* SEARCH {}\r\n{tag} OK SEARCH completed (Success)\r\n", uids.join(" "))
                    }
                },
                "UID FETCH" => match fetch(&account, selected.as_deref(), &tokens) {
                    Some(mut out) => {
                        out.extend_from_slice(format!("{tag} OK Success\r\n").as_bytes());
                        String::from_utf8_lossy(&out).into_owned()
                    }
                    None => format!("{tag} BAD no mailbox selected\r\n"),
                },
                "UID STORE" => store(&mut account, selected.as_deref(), &tokens, tag),
                "UID COPY" => copy(&mut account, selected.as_deref(), &tokens, tag),
                "APPEND" => append(&mut account, &name, &tokens, literal.unwrap_or_default(), tag),
                "CLOSE" | "UNSELECT" => {
                    selected = None;
                    format!("{tag} OK Success\r\n")
                }
                _ => format!("{tag} BAD Unknown command\r\n"),
            };
            (reply, command == "LOGOUT")
        };
        write.write_all(reply.as_bytes()).await?;
        if bye {
            return Ok(());
        }
    }
}

/// The answer to a `UID FETCH` in `selected`, without the tagged line.
fn fetch(account: &Account, selected: Option<&str>, tokens: &[String]) -> Option<Vec<u8>> {
    let name = selected?;
    let folder = account.folders.get(name)?;
    let own_label = Account::label_of(name);
    let set = tokens.first().cloned().unwrap_or_default();
    let items = tokens.get(1).cloned().unwrap_or_default().to_ascii_uppercase();
    let max = folder.entries.iter().map(|(uid, _)| *uid).max().unwrap_or(0);
    let mut out = Vec::new();
    for (sequence, (uid, index)) in folder.entries.iter().enumerate() {
        if !in_set(&set, *uid, max) {
            continue;
        }
        let message = &account.messages[*index];
        out.extend_from_slice(format!("* {} FETCH (UID {uid}", sequence + 1).as_bytes());
        if items.contains("X-GM-MSGID") {
            out.extend_from_slice(format!(" X-GM-MSGID {}", message.msgid).as_bytes());
        }
        if items.contains("X-GM-LABELS") {
            let labels: Vec<String> = message
                .labels
                .iter()
                .filter(|label| Some(*label) != own_label.as_ref())
                .map(|label| if label.starts_with('\\') { label.clone() } else { quote(label) })
                .collect();
            out.extend_from_slice(format!(" X-GM-LABELS ({})", labels.join(" ")).as_bytes());
        }
        if items.contains("FLAGS") {
            let flags: Vec<&str> = message.flags.iter().map(String::as_str).collect();
            out.extend_from_slice(format!(" FLAGS ({})", flags.join(" ")).as_bytes());
        }
        if items.contains("INTERNALDATE") {
            out.extend_from_slice(format!(" INTERNALDATE {}", quote(&message.date)).as_bytes());
        }
        if items.contains("RFC822.SIZE") {
            out.extend_from_slice(format!(" RFC822.SIZE {}", message.body.len()).as_bytes());
        }
        if items.contains("BODY.PEEK[HEADER]") {
            let end = message
                .body
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(message.body.len(), |at| at + 4);
            out.extend_from_slice(format!(" BODY[HEADER] {{{end}}}\r\n").as_bytes());
            out.extend_from_slice(&message.body[..end]);
        }
        if items.contains("BODY.PEEK[]") {
            out.extend_from_slice(format!(" BODY[] {{{}}}\r\n", message.body.len()).as_bytes());
            out.extend_from_slice(&message.body);
        }
        out.extend_from_slice(b")\r\n");
    }
    Some(out)
}

/// The messages of `selected` whose UIDs are in `set`.
fn selected_messages(account: &Account, selected: Option<&str>, set: &str) -> Option<Vec<(u32, usize)>> {
    let folder = account.folders.get(selected?)?;
    let max = folder.entries.iter().map(|(uid, _)| *uid).max().unwrap_or(0);
    Some(folder.entries.iter().filter(|(uid, _)| in_set(set, *uid, max)).copied().collect())
}

fn store(account: &mut Account, selected: Option<&str>, tokens: &[String], tag: &str) -> String {
    let set = tokens.first().cloned().unwrap_or_default();
    let Some(hits) = selected_messages(account, selected, &set) else {
        return format!("{tag} BAD no mailbox selected\r\n");
    };
    let item = tokens.get(1).cloned().unwrap_or_default().to_ascii_uppercase();
    let values = list_items(tokens.get(2).map(String::as_str).unwrap_or("()"));
    for (_, index) in hits {
        if item.contains("X-GM-LABELS") {
            for label in &values {
                if item.starts_with('-') {
                    account.messages[index].labels.remove(label);
                } else {
                    account.put(index, &Account::folder_of(label));
                }
            }
        } else if item.contains("FLAGS") {
            let flags = &mut account.messages[index].flags;
            if item.starts_with('-') {
                values.iter().for_each(|flag| {
                    flags.remove(flag);
                });
            } else if item.starts_with('+') {
                flags.extend(values.iter().cloned());
            } else {
                *flags = values.iter().cloned().collect();
            }
        }
    }
    format!("{tag} OK Success\r\n")
}

fn copy(account: &mut Account, selected: Option<&str>, tokens: &[String], tag: &str) -> String {
    let set = tokens.first().cloned().unwrap_or_default();
    let target = tokens.get(1).map(|name| account.resolve(name)).unwrap_or_default();
    let Some(hits) = selected_messages(account, selected, &set) else {
        return format!("{tag} BAD no mailbox selected\r\n");
    };
    if !account.folders.contains_key(&target) {
        return format!("{tag} NO [TRYCREATE] No folder {target} (Failure)\r\n");
    }
    let (mut from, mut to) = (Vec::new(), Vec::new());
    for (uid, index) in hits {
        from.push(uid.to_string());
        to.push(account.put(index, &target).to_string());
    }
    if from.is_empty() {
        return format!("{tag} OK No messages copied\r\n");
    }
    let validity = account.folders[&target].validity;
    format!("{tag} OK [COPYUID {validity} {} {}] (Success)\r\n", from.join(","), to.join(","))
}

fn append(account: &mut Account, name: &str, tokens: &[String], body: Vec<u8>, tag: &str) -> String {
    if !account.folders.contains_key(name) {
        return format!("{tag} NO [TRYCREATE] Folder doesn't exist. (Failure)\r\n");
    }
    let number = account.appends;
    account.appends += 1;
    account.appended_bytes += body.len();
    if account.throttle_appends.contains(&number) {
        return format!("{tag} NO [THROTTLED] Account exceeded command or bandwidth limits. (Failure)\r\n");
    }
    if body.len() > APPEND_LIMIT {
        return format!("{tag} NO [TOOBIG] Message too large. (Failure)\r\n");
    }
    let flags =
        tokens.get(1).filter(|token| token.starts_with('(')).map(|list| list_items(list)).unwrap_or_default();
    // The date: the quoted argument after the mailbox and the flags (a literal's `{n}` is not one).
    let date =
        tokens.iter().skip(1).find(|token| !token.starts_with('(') && !token.starts_with('{')).cloned();
    let index = match account.messages.iter().position(|message| message.body == body) {
        Some(index) => {
            account.duplicate_appends += 1;
            index
        }
        None => {
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            let index = account.add(&body, &[], &flags);
            if let Some(date) = date {
                account.messages[index].date = date;
            }
            index
        }
    };
    let uid = account.put(index, name);
    let validity = account.folders[name].validity;
    format!("{tag} OK [APPENDUID {validity} {uid}] (Success)\r\n")
}
