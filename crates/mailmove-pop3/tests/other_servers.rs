//! The POP3 source against two more real servers besides Dovecot: Cyrus pop3d (`scripts/cyrus.sh`)
//! and GNU Mailutils pop3d (`scripts/mailutils.sh`), both plain POP3 on loopback (`tls=none`).
//!
//! For each server the INBOX is filled through that server's own IMAP (APPEND), with the messages
//! that break migrations: raw 8-bit header bytes, lines starting with `.` (dot-stuffing), a
//! 100,000-character line and a message without a final newline. Then it is proven that:
//! * POP3 lists every message, with the size IMAP gives as `RFC822.SIZE`;
//! * every body the POP3 source fetches equals what the same server serves over IMAP for that
//!   message, byte for byte: exactly so on Cyrus, and on Mailutils but for the one header its
//!   pop3d adds (`X-UIDL`, its own bookkeeping, which imap4d has not stored yet);
//! * what each server stored from our APPENDs is pinned down too (Cyrus: each raw 8-bit header
//!   byte becomes `X`; imap4d: `X-IMAPbase`/`X-UID` added, a final newline added);
//! * the engine (`mailmove_core::engine::copy`, MemoryStore sink, in-memory checkpoint) copies
//!   every message exactly as fetched, and a second run over the same checkpoint copies none;
//! * what ending the POP3 session does to the maildrop: nothing on Cyrus (QUIT); on Mailutils,
//!   even without QUIT (a dropped connection, as the CLI ends a copy), pop3d rewrites the mbox:
//!   `X-UIDL` and `Status: OR` added to every message, so the same UIDL then serves other bytes;
//!   the UIDLs stay, so a further engine run still copies nothing.
//!
//! Needs both throw-away servers (run through `scripts/test.sh`, or start them and `source`
//! their `DIR/env`): without the `MAILMOVE_TEST_CYRUS_*` / `MAILMOVE_TEST_MAILUTILS_*` variables
//! the tests fail, they never skip. The Mailutils test uses the LAST user of the pool
//! (`MAILMOVE_TEST_MAILUTILS_USERS`), which other tests (taking users from the front) leave alone,
//! and empties its INBOX first; it needs the rights to write the spool (the suite runs as root).

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::PathBuf;

use futures::StreamExt;
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{self, CopyOptions, EventSink};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{FolderPath, MailSource, MailSourceExt, Secret};
use mailmove_pop3::{Pop3Config, Pop3Source};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A test-server variable; fails the test (never skips it) when missing.
fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the throw-away Cyrus (scripts/cyrus.sh start DIR) and \
             GNU Mailutils (scripts/mailutils.sh start DIR) servers; run the suite through scripts/test.sh \
             or `source DIR/env` of both before cargo test"
        )
    })
}

// ---------------------------------------------------------------------------------------------
// The messages
// ---------------------------------------------------------------------------------------------

/// The long line's length: far beyond RFC 5322's 998, so that no line buffer of the client or the
/// server can be a fixed 1000 or 8192 bytes.
const LONG_LINE: usize = 100_000;

/// What each test APPENDs, in this order (unique per run through `tag`). CRLF throughout: Cyrus
/// refuses bare LF.
fn messages(tag: &str) -> Vec<Vec<u8>> {
    let eight_bit = [
        b"From: J\xc3\xb6rg Gr\xc3\xbcn <joerg@example.org>\r\nTo: Ana <ana@example.net>\r\n".as_slice(),
        b"Subject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln ",
        tag.as_bytes(),
        b"\r\nMessage-ID: <8bit-",
        tag.as_bytes(),
        b"@mailmove.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        b"Stra\xc3\x9fe und Gr\xc3\xbc\xc3\x9fe im Text.\r\n",
    ]
    .concat();
    let dots = format!(
        "Subject: dot-stuffing {tag}\r\nMessage-ID: <dots-{tag}@mailmove.test>\r\n\r\n\
         .\r\n..\r\n...three\r\n.leading dot\r\n. dot space\r\n.\r\nend\r\n"
    )
    .into_bytes();
    let long = [
        format!("Subject: a long line {tag}\r\nMessage-ID: <long-{tag}@mailmove.test>\r\n\r\n").into_bytes(),
        b"0123456789".repeat(LONG_LINE / 10),
        b"\r\nafter the long line\r\n".to_vec(),
    ]
    .concat();
    let unterminated = format!(
        "Subject: no final newline {tag}\r\nMessage-ID: <nofinal-{tag}@mailmove.test>\r\n\r\n\
         first line\r\nthe last line has no line break"
    )
    .into_bytes();
    let plain = format!("Subject: plain {tag}\r\nMessage-ID: <plain-{tag}@mailmove.test>\r\n\r\nhello\r\n")
        .into_bytes();
    vec![eight_bit, dots, long, unterminated, plain]
}

/// Index of the message with raw 8-bit header bytes, and of the one without a final newline.
const EIGHT_BIT: usize = 0;
const UNTERMINATED: usize = 3;

/// The header section (up to and including the empty line) and the rest.
fn split_header(body: &[u8]) -> (&[u8], &[u8]) {
    let end = body.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).expect("header section");
    body.split_at(end)
}

// ---------------------------------------------------------------------------------------------
// A minimal IMAP client: the store crate is not a dependency of this crate, and the point is to
// see what the server itself serves, with nothing of mailmove in between.
// ---------------------------------------------------------------------------------------------

struct Imap {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_tag: u32,
    server: &'static str,
}

/// One response: its text pieces and the literals between them.
#[derive(Default)]
struct Response {
    text: String,
    literals: Vec<Vec<u8>>,
}

/// A message as IMAP serves it.
struct Served {
    size: u64,
    body: Vec<u8>,
}

impl Imap {
    async fn login(server: &'static str, port: &str, user: &str, password: &str) -> Imap {
        let stream = TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("connecting to the {server} IMAP on 127.0.0.1:{port}: {e}"));
        let (read, writer) = stream.into_split();
        let mut imap = Imap { reader: BufReader::new(read), writer, next_tag: 1, server };
        let greeting = imap.read_response().await;
        assert!(greeting.text.starts_with("* OK"), "{server} greeting: {}", greeting.text);
        imap.ok(&format!("LOGIN \"{user}\" \"{password}\"")).await;
        imap
    }

    /// Reads one response line, with every literal it announces (`{N}` at a line's end).
    async fn read_response(&mut self) -> Response {
        let mut response = Response::default();
        loop {
            let mut line = Vec::new();
            let n = self.reader.read_until(b'\n', &mut line).await.expect("reading IMAP");
            assert!(n > 0, "{} closed the IMAP connection after: {}", self.server, response.text);
            let text = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string();
            response.text.push_str(&text);
            let literal = text
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .and_then(|(_, n)| n.trim_end_matches('+').parse::<usize>().ok());
            let Some(length) = literal else { return response };
            let mut bytes = vec![0; length];
            self.reader.read_exact(&mut bytes).await.expect("reading an IMAP literal");
            response.literals.push(bytes);
            response.text.push_str(" <literal> ");
        }
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("T{}", self.next_tag)
    }

    /// Sends a command without literals; returns the untagged responses; asserts OK.
    async fn ok(&mut self, command: &str) -> Vec<Response> {
        let tag = self.tag();
        self.writer.write_all(format!("{tag} {command}\r\n").as_bytes()).await.unwrap();
        self.until_tagged(&tag, command).await
    }

    async fn until_tagged(&mut self, tag: &str, command: &str) -> Vec<Response> {
        let mut untagged = Vec::new();
        loop {
            let response = self.read_response().await;
            if let Some(rest) = response.text.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "{}: `{command}` answered {}", self.server, response.text);
                return untagged;
            }
            untagged.push(response);
        }
    }

    /// APPENDs one message to INBOX (a synchronizing literal: wait for the continuation).
    async fn append(&mut self, body: &[u8]) {
        let tag = self.tag();
        let command = format!("{tag} APPEND INBOX {{{}}}\r\n", body.len());
        self.writer.write_all(command.as_bytes()).await.unwrap();
        let go = self.read_response().await;
        assert!(go.text.starts_with('+'), "{}: APPEND answered {}", self.server, go.text);
        self.writer.write_all(body).await.unwrap();
        self.writer.write_all(b"\r\n").await.unwrap();
        self.until_tagged(&tag, "APPEND").await;
    }

    /// Every message of INBOX in sequence order, read-only (EXAMINE, BODY.PEEK: no \Seen set).
    async fn inbox(&mut self) -> Vec<Served> {
        self.ok("EXAMINE INBOX").await;
        let responses = self.ok("FETCH 1:* (RFC822.SIZE BODY.PEEK[])").await;
        let mut out: Vec<(u32, Served)> = Vec::new();
        for response in responses {
            let Some(rest) = response.text.strip_prefix("* ") else { continue };
            let Some((number, rest)) = rest.split_once(' ') else { continue };
            if !rest.starts_with("FETCH") {
                continue;
            }
            let size = rest
                .split_once("RFC822.SIZE ")
                .and_then(|(_, s)| s.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{}: no RFC822.SIZE in {}", self.server, response.text));
            let body = response.literals.into_iter().next().expect("BODY[] literal");
            out.push((number.parse().expect("sequence number"), Served { size, body }));
        }
        out.sort_by_key(|(number, _)| *number);
        out.into_iter().map(|(_, served)| served).collect()
    }

    async fn logout(mut self) {
        self.ok("LOGOUT").await;
    }
}

// ---------------------------------------------------------------------------------------------
// POP3 through the crate
// ---------------------------------------------------------------------------------------------

fn pop3_source(port: &str, user: &str, password: &str) -> Pop3Source {
    let url = format!("pop3://{user}@127.0.0.1:{port}/?tls=none");
    let config = Pop3Config::from_url(&url).unwrap().with_password(Secret::new(password));
    Pop3Source::new(config).unwrap()
}

/// (UIDL, LIST size, body) of every message, in the order the maildrop lists them.
async fn pop3_messages(source: &Pop3Source) -> Vec<(String, u64, Vec<u8>)> {
    let inbox = FolderPath::inbox();
    let metas = source.collect_messages(&inbox).await.expect("POP3 listing");
    let keys: Vec<_> = metas.iter().map(|m| m.key.clone()).collect();
    let mut fetched = source.fetch(&inbox, &keys);
    let mut bodies = Vec::new();
    while let Some(message) = fetched.next().await {
        let message = message.expect("POP3 RETR");
        bodies.push((message.meta.key.clone(), message.body.to_bytes().unwrap().to_vec()));
    }
    drop(fetched);
    assert_eq!(bodies.len(), metas.len(), "RETR returned fewer messages than listed");
    metas
        .into_iter()
        .map(|meta| {
            let body = bodies
                .iter()
                .find(|(key, _)| *key == meta.key)
                .unwrap_or_else(|| panic!("no body for {}", meta.key))
                .1
                .clone();
            (meta.key.to_string(), meta.size, body)
        })
        .collect()
}

fn sorted(mut bodies: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    bodies.sort();
    bodies
}

/// Copies the maildrop into a MemoryStore twice over one in-memory checkpoint: the first run
/// copies every message (returned, as the destination holds them), the second none.
async fn copy_twice(source: &Pop3Source, expected: usize) -> (Checkpoint, MemoryStore, Vec<Vec<u8>>) {
    let destination = MemoryStore::new("destination");
    let checkpoint = Checkpoint::in_memory(&source.identity(), "memory://destination").unwrap();
    let options = CopyOptions::default();
    let first =
        engine::copy(source, &destination, &options, &checkpoint, &EventSink::none()).await.expect("copy");
    assert_eq!((first.copied, first.failed), (expected as u64, 0), "first run: {:?}", first.failures);
    assert!(first.is_exact(), "first run not exact: altered {:?} damaged {:?}", first.altered, first.damaged);
    let second =
        engine::copy(source, &destination, &options, &checkpoint, &EventSink::none()).await.expect("re-run");
    assert_eq!((second.copied, second.skipped, second.failed), (0, expected as u64, 0), "second run");
    let copied = destination.contents(&FolderPath::inbox()).into_iter().map(|(body, _, _)| body).collect();
    (checkpoint, destination, copied)
}

// ---------------------------------------------------------------------------------------------
// Cyrus
// ---------------------------------------------------------------------------------------------

/// Creates the INBOX of `user` the way Cyrus needs it: `CREATE user.NAME` as the admin.
async fn cyrus_create_user(user: &str) {
    let mut admin = Imap::login(
        "Cyrus",
        &var("MAILMOVE_TEST_CYRUS_IMAP_PORT"),
        &var("MAILMOVE_TEST_CYRUS_ADMIN"),
        &var("MAILMOVE_TEST_CYRUS_PASSWORD"),
    )
    .await;
    admin.ok(&format!("CREATE user.{user}")).await;
    admin.logout().await;
}

/// What Cyrus stores for a message with raw 8-bit header bytes (its default `munge8bit`): each
/// such byte of the header section becomes `X`; the body keeps its 8-bit bytes.
fn cyrus_munged(body: &[u8]) -> Vec<u8> {
    let (header, rest) = split_header(body);
    let mut out: Vec<u8> = header.iter().map(|&b| if b > 0x7f { b'X' } else { b }).collect();
    out.extend_from_slice(rest);
    out
}

#[tokio::test]
async fn cyrus_pop3d_serves_what_its_imap_serves_and_the_engine_copies_it_once() {
    let (imap_port, pop3_port) = (var("MAILMOVE_TEST_CYRUS_IMAP_PORT"), var("MAILMOVE_TEST_CYRUS_POP3_PORT"));
    let password = var("MAILMOVE_TEST_CYRUS_PASSWORD");
    // A fresh user per run: Cyrus creates no INBOX on login, and a new one is empty.
    let tag = format!("{:08x}", std::process::id() ^ std::time::UNIX_EPOCH.elapsed().unwrap().subsec_nanos());
    let user = format!("pop3other-{tag}");
    cyrus_create_user(&user).await;
    let appended = messages(&tag);

    let mut imap = Imap::login("Cyrus", &imap_port, &user, &password).await;
    for body in &appended {
        imap.append(body).await;
    }
    let served = imap.inbox().await;
    imap.logout().await;
    assert_eq!(served.len(), appended.len());
    // What Cyrus made of our APPENDs: raw 8-bit header bytes each replaced by `X` (answered OK,
    // nothing said); everything else, the missing final newline included, stored as sent.
    for (index, (served, sent)) in served.iter().zip(&appended).enumerate() {
        let expected = if index == EIGHT_BIT { cyrus_munged(sent) } else { sent.clone() };
        assert!(served.body == expected, "Cyrus stored message {index} otherwise than expected");
        assert_eq!(served.size, served.body.len() as u64, "RFC822.SIZE of message {index}");
    }

    let source = pop3_source(&pop3_port, &user, &password);
    let popped = pop3_messages(&source).await;
    assert_eq!(popped.len(), appended.len(), "POP3 lists every message");
    for (index, ((uidl, size, body), served)) in popped.iter().zip(&served).enumerate() {
        assert_eq!(*size, served.size, "LIST size of message {index} ({uidl}) is IMAP's RFC822.SIZE");
        // Byte for byte, the message without a final newline included: pop3d sends it with CRLF
        // added (the terminator must be on a line of its own) and the source takes it off again.
        assert!(
            *body == served.body,
            "POP3 and IMAP of Cyrus differ for message {index} ({uidl}): {} vs {} bytes",
            body.len(),
            served.body.len()
        );
    }
    assert!(!popped[UNTERMINATED].2.ends_with(b"\n"));

    // The engine: everything once, as fetched; then nothing.
    let (_checkpoint, _destination, copied) = copy_twice(&source, appended.len()).await;
    let popped_bodies: Vec<Vec<u8>> = popped.iter().map(|(_, _, body)| body.clone()).collect();
    assert!(sorted(copied) == sorted(popped_bodies), "the engine's copies differ from the POP3 bodies");

    // QUIT (close) changes nothing Cyrus serves.
    source.close().await.unwrap();
    let mut imap = Imap::login("Cyrus", &imap_port, &user, &password).await;
    let after = imap.inbox().await;
    imap.logout().await;
    assert_eq!(after.len(), served.len());
    for (index, (after, before)) in after.iter().zip(&served).enumerate() {
        assert!(after.body == before.body, "message {index} changed after the POP3 session");
    }
}

// ---------------------------------------------------------------------------------------------
// GNU Mailutils
// ---------------------------------------------------------------------------------------------

/// The pool's last user: other tests take users from the front of the pool.
fn mailutils_user() -> String {
    let users = var("MAILMOVE_TEST_MAILUTILS_USERS");
    users.split_whitespace().last().expect("an empty MAILMOVE_TEST_MAILUTILS_USERS").to_string()
}

fn ids_of(name: &str, file: &str) -> (u32, u32) {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&name)).then(|| (fields[2].parse().unwrap(), fields[3].parse().unwrap()))
        })
        .unwrap_or_else(|| panic!("{name} is not in {file}"))
}

/// Empties the user's INBOX: an empty mbox spool file owned by the user (imap4d answers APPEND
/// to a missing one with `NO [TRYCREATE]`), no stale lock.
fn empty_mailutils_inbox(user: &str) {
    let spool = PathBuf::from(var("MAILMOVE_TEST_MAILUTILS_SPOOL")).join(user);
    let _ = std::fs::remove_file(spool.with_extension("lock"));
    std::fs::write(&spool, b"").unwrap_or_else(|e| panic!("emptying {spool:?}: {e} (run as root)"));
    let (uid, _) = ids_of(user, "/etc/passwd");
    let gid = std::fs::read_to_string("/etc/group").ok().and_then(|g| {
        g.lines().find(|l| l.starts_with("mail:")).and_then(|l| l.split(':').nth(2)?.parse().ok())
    });
    chown(&spool, Some(uid), gid).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The header fields of a header section, each with its continuation lines.
fn fields(header: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" {
            break;
        }
        match out.last_mut() {
            Some(field) if line.starts_with(b" ") || line.starts_with(b"\t") => field.extend_from_slice(line),
            _ => out.push(line.to_vec()),
        }
    }
    out
}

fn named(field: &[u8], name: &str) -> bool {
    field.len() > name.len()
        && field[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        && field[name.len()] == b':'
}

/// `body` without the header fields named.
fn without(body: &[u8], names: &[&str]) -> Vec<u8> {
    let (header, rest) = split_header(body);
    let mut out: Vec<u8> =
        fields(header).into_iter().filter(|f| !names.iter().any(|n| named(f, n))).flatten().collect();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(rest);
    out
}

#[tokio::test]
async fn mailutils_pop3d_serves_what_imap4d_serves_plus_x_uidl_and_rewrites_the_mbox_at_session_end() {
    let (imap_port, pop3_port) =
        (var("MAILMOVE_TEST_MAILUTILS_IMAP_PORT"), var("MAILMOVE_TEST_MAILUTILS_POP3_PORT"));
    let password = var("MAILMOVE_TEST_MAILUTILS_PASSWORD");
    let user = mailutils_user();
    eprintln!("mailutils user: {user}");
    empty_mailutils_inbox(&user);
    let tag = format!("{:08x}", std::process::id() ^ std::time::UNIX_EPOCH.elapsed().unwrap().subsec_nanos());
    let appended = messages(&tag);

    let mut imap = Imap::login("Mailutils", &imap_port, &user, &password).await;
    for body in &appended {
        imap.append(body).await;
    }
    let served = imap.inbox().await;
    imap.logout().await;
    assert_eq!(served.len(), appended.len());
    // What imap4d made of our APPENDs: its bookkeeping fields appended to the header (X-UID on
    // each, X-IMAPbase on the first), a final newline added; everything else, 8-bit header bytes
    // included, stored as sent.
    for (index, (served, sent)) in served.iter().zip(&appended).enumerate() {
        let mut expected = sent.clone();
        if index == UNTERMINATED {
            expected.extend_from_slice(b"\r\n");
        }
        assert!(
            without(&served.body, &["X-UID", "X-IMAPbase"]) == expected,
            "imap4d stored message {index} otherwise than expected:\n{}",
            String::from_utf8_lossy(split_header(&served.body).0)
        );
        let bookkeeping: Vec<_> = fields(split_header(&served.body).0)
            .into_iter()
            .filter(|f| named(f, "X-UID") || named(f, "X-IMAPbase"))
            .collect();
        assert_eq!(bookkeeping.len(), if index == 0 { 2 } else { 1 }, "message {index}");
        assert_eq!(served.size, served.body.len() as u64, "RFC822.SIZE of message {index}");
    }

    // Mailutils pop3d locks the maildrop for its whole session (imap4d then waits 30 s and fails):
    // every IMAP session here ends before a POP3 one starts, and the reverse.
    let source = pop3_source(&pop3_port, &user, &password);
    let popped = pop3_messages(&source).await;
    assert_eq!(popped.len(), appended.len(), "POP3 lists every message");
    for (index, ((uidl, size, body), served)) in popped.iter().zip(&served).enumerate() {
        // LIST counts the message as stored, without the X-UIDL that RETR then shows.
        assert_eq!(*size, served.size, "LIST size of message {index} ({uidl}) is IMAP's RFC822.SIZE");
        // The one difference: pop3d adds `X-UIDL: <its UIDL>` as the last header field, a field
        // imap4d has not got (pop3d writes it into the mbox when the session ends, see below).
        let (header, rest) = split_header(&served.body);
        let mut expected = header[..header.len() - 2].to_vec();
        expected.extend_from_slice(format!("X-UIDL: {uidl}\r\n\r\n").as_bytes());
        expected.extend_from_slice(rest);
        assert!(
            *body == expected,
            "POP3 and IMAP of Mailutils differ for message {index} ({uidl}) beyond X-UIDL:\nPOP3 header:\n{}\nIMAP header:\n{}",
            String::from_utf8_lossy(split_header(body).0),
            String::from_utf8_lossy(header)
        );
    }

    // The engine copies what this session's RETR gives (X-UIDL included), once.
    let (checkpoint, destination, copied) = copy_twice(&source, appended.len()).await;
    let popped_bodies: Vec<Vec<u8>> = popped.iter().map(|(_, _, body)| body.clone()).collect();
    assert!(sorted(copied) == sorted(popped_bodies), "the engine's copies differ from the POP3 bodies");

    // The session ends as the CLI ends it: the connection dropped, no QUIT (the source sends QUIT
    // only from `close` and `delete_keys`). pop3d rewrites the mbox all the same, although nothing
    // was deleted: X-UIDL written into each message (before the bookkeeping fields) and
    // `Status: OR` (old, read). IMAP then shows exactly that, and a new POP3 session serves the
    // same bytes as IMAP, under the same UIDLs.
    drop(source);
    wait_for_rewrite(&user, appended.len()).await;
    let mut imap = Imap::login("Mailutils", &imap_port, &user, &password).await;
    let after = imap.inbox().await;
    imap.logout().await;
    assert_eq!(after.len(), served.len());
    for (index, ((uidl, _, _), (after, before))) in popped.iter().zip(after.iter().zip(&served)).enumerate() {
        let uidl_fields: Vec<_> =
            fields(split_header(&after.body).0).into_iter().filter(|f| named(f, "X-UIDL")).collect();
        assert_eq!(uidl_fields, vec![format!("X-UIDL: {uidl}\r\n").into_bytes()], "message {index}");
        let status: Vec<_> =
            fields(split_header(&after.body).0).into_iter().filter(|f| named(f, "Status")).collect();
        assert_eq!(status, vec![b"Status: OR\r\n".to_vec()], "message {index}");
        assert!(
            without(&after.body, &["X-UIDL", "Status"]) == before.body,
            "after the POP3 session message {index} changed beyond X-UIDL and Status"
        );
    }
    let source = pop3_source(&pop3_port, &user, &password);
    let again = pop3_messages(&source).await;
    assert_eq!(again.len(), after.len());
    for (index, ((uidl, size, body), ((old_uidl, _, _), after))) in
        again.iter().zip(popped.iter().zip(&after)).enumerate()
    {
        assert_eq!(uidl, old_uidl, "the UIDL of message {index} changed");
        assert_eq!(*size, after.size, "LIST size of message {index}");
        assert!(*body == after.body, "POP3 and IMAP differ for message {index} after the rewrite");
        // So the same message (same UIDL) is not the same bytes in two sessions.
        assert!(*body != popped[index].2, "message {index}");
    }
    // Keys are UIDLs: the rewritten messages are not copied again.
    let report =
        engine::copy(&source, &destination, &CopyOptions::default(), &checkpoint, &EventSink::none())
            .await
            .unwrap();
    assert_eq!((report.copied, report.skipped, report.failed), (0, appended.len() as u64, 0));
    // QUIT now changes nothing more: every message already has its X-UIDL and Status.
    source.close().await.unwrap();
    wait_for_rewrite(&user, appended.len()).await;
    let mut imap = Imap::login("Mailutils", &imap_port, &user, &password).await;
    let last = imap.inbox().await;
    imap.logout().await;
    for (index, (last, after)) in last.iter().zip(&after).enumerate() {
        assert!(last.body == after.body, "message {index} changed again at QUIT");
    }
}

/// Waits (up to 15 s) until pop3d, after the session's end, has rewritten the user's mbox with a
/// `Status: OR` for each of `messages` messages and released its lock: the rewrite runs after the
/// connection is gone, and IMAP read earlier would see the mbox before it.
async fn wait_for_rewrite(user: &str, messages: usize) {
    let spool = PathBuf::from(var("MAILMOVE_TEST_MAILUTILS_SPOOL")).join(user);
    let lock = spool.with_extension("lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let text = std::fs::read(&spool).unwrap();
        let marked = text.windows(12).filter(|w| *w == b"\nStatus: OR\n").count();
        if marked == messages && !lock.exists() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pop3d did not rewrite {spool:?} ({marked} of {messages} messages marked)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
