//! The redaction rules on crafted exchanges, and the trace file's form.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::redact::{Direction, Record, Redactor};
use super::*;

/// One step of an exchange: who sends which bytes.
enum Step<'a> {
    C(&'a [u8]),
    S(&'a [u8]),
}
use Step::{C, S};

/// The trace lines (`C: ...`, `S: ...`) of an exchange, including what was under way at the end.
fn trace(protocol: Protocol, steps: &[Step<'_>]) -> Vec<String> {
    trace_with(Redactor::new(protocol), steps)
}

fn trace_with(mut redactor: Redactor, steps: &[Step<'_>]) -> Vec<String> {
    let mut records = Vec::new();
    for step in steps {
        match step {
            C(bytes) => redactor.client(bytes, &mut records),
            S(bytes) => redactor.server(bytes, &mut records),
        }
    }
    redactor.finish(&mut records);
    records.into_iter().map(|Record { direction, text }| format!("{}: {text}", direction.letter())).collect()
}

/// Fails when any of `needles` appears in any line.
fn assert_absent(lines: &[String], needles: &[&str]) {
    for needle in needles {
        assert!(!lines.iter().any(|line| line.contains(needle)), "{needle:?} leaked: {lines:#?}");
    }
}

#[test]
fn login_keeps_the_user_and_redacts_a_quoted_or_atom_password() {
    let lines = trace(
        Protocol::Imap,
        &[
            C(b"a0001 LOGIN \"ana\" \"s3cret pw\"\r\n"),
            S(b"a0001 OK logged in\r\n"),
            C(b"a0002 login \"a\\\"na\" s3cretpw\r\n"),
            C(b"a0003 LOGIN ana s3cretpw\r\n"),
        ],
    );
    assert_eq!(
        lines,
        [
            "C: a0001 LOGIN \"ana\" [redacted]",
            "S: a0001 OK logged in",
            "C: a0002 login \"a\\\"na\" [redacted]",
            "C: a0003 LOGIN ana [redacted]",
        ]
    );
    assert_absent(&lines, &["s3cret"]);
}

#[test]
fn login_with_a_synchronising_literal_password() {
    // `{6}\r\nsecret`: the client waits for `+` before sending the password.
    let lines = trace(
        Protocol::Imap,
        &[
            C(b"a1 LOGIN \"ana\" {6}\r\n"),
            S(b"+ go ahead\r\n"),
            C(b"secret"),
            C(b"\r\n"),
            S(b"a1 OK done\r\n"),
            C(b"a2 SELECT INBOX\r\n"),
        ],
    );
    assert_eq!(
        lines,
        [
            "C: a1 LOGIN \"ana\" [redacted]",
            "S: + go ahead",
            "C: [redacted]",
            "S: a1 OK done",
            "C: a2 SELECT INBOX",
        ]
    );
    assert_absent(&lines, &["secret", "{6}"]);
}

#[test]
fn login_with_literal_user_and_password() {
    // Non-synchronising (LITERAL+), in one write; then the password's literal is split.
    let lines = trace(Protocol::Imap, &[C(b"a1 LOGIN {3+}\r\nana {9+}\r\ns3cr"), C(b"et-pw\r\na2 NOOP\r\n")]);
    assert_eq!(
        lines,
        ["C: a1 LOGIN {3+}", "C: [3 bytes redacted]", "C: [redacted]", "C: [redacted]", "C: a2 NOOP"]
    );
    assert_absent(&lines, &["s3cr", "et-pw", "{9+}"]);
}

#[test]
fn a_refused_synchronising_literal_is_never_sent_and_framing_stays_in_step() {
    let lines = trace(
        Protocol::Imap,
        &[
            C(b"m4 APPEND \"Nope\" {5}\r\n"),
            S(b"m4 NO [TRYCREATE] no such mailbox\r\n"),
            C(b"m5 CREATE \"Nope\"\r\n"),
        ],
    );
    assert_eq!(
        lines,
        ["C: m4 APPEND \"Nope\" {5}", "S: m4 NO [TRYCREATE] no such mailbox", "C: m5 CREATE \"Nope\""]
    );
}

#[test]
fn authenticate_plain_initial_response_is_redacted() {
    let initial = STANDARD.encode(b"\0ana\0s3cret");
    let command = format!("a1 AUTHENTICATE PLAIN {initial}\r\n");
    let lines = trace(
        Protocol::Imap,
        &[
            C(command.as_bytes()),
            S(b"a1 OK [CAPABILITY IMAP4rev1] Logged in\r\n"),
            C(b"a2 LIST \"\" \"*\"\r\n"),
        ],
    );
    assert_eq!(
        lines,
        [
            "C: a1 AUTHENTICATE PLAIN [redacted]",
            "S: a1 OK [CAPABILITY IMAP4rev1] Logged in",
            "C: a2 LIST \"\" \"*\""
        ]
    );
    assert_absent(&lines, &[&initial, "s3cret"]);
}

#[test]
fn xoauth2_continuations_are_redacted_until_the_tagged_answer() {
    let token = STANDARD.encode(b"user=ana@example.org\x01auth=Bearer ya29.TOKEN\x01\x01");
    let response = format!("{token}\r\n");
    let lines = trace(
        Protocol::Imap,
        &[
            C(b"a1 AUTHENTICATE XOAUTH2\r\n"),
            S(b"+ \r\n"),
            C(response.as_bytes()),
            S(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"),
            C(b"\r\n"),
            S(b"a1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"),
            C(b"a2 LOGOUT\r\n"),
        ],
    );
    assert_eq!(
        lines,
        [
            "C: a1 AUTHENTICATE XOAUTH2",
            "S: + ",
            "C: [redacted]",
            "S: + eyJzdGF0dXMiOiI0MDEifQ==",
            "C: [redacted]",
            "S: a1 NO [AUTHENTICATIONFAILED] Invalid credentials",
            "C: a2 LOGOUT",
        ]
    );
    assert_absent(&lines, &[&token, "ya29"]);
}

#[test]
fn fetch_bodies_are_counted_and_the_items_around_them_stay() {
    let body = b"Subject: MARKER-7\r\n\r\nMARKER body line\r\n";
    let head = format!("* 1 FETCH (UID 5 RFC822.SIZE {0} FLAGS (\\Seen) BODY[] {{{0}}}\r\n", body.len());
    let lines = trace(
        Protocol::Imap,
        &[
            C(b"m3 UID FETCH 5 (UID RFC822.SIZE FLAGS BODY.PEEK[])\r\n"),
            S(head.as_bytes()),
            S(&body[..10]),
            S(&body[10..]),
            S(b" INTERNALDATE \"02-Jan-2020 10:00:00 +0100\")\r\nm3 OK done\r\n"),
        ],
    );
    assert_eq!(
        lines,
        [
            "C: m3 UID FETCH 5 (UID RFC822.SIZE FLAGS BODY.PEEK[])".to_string(),
            format!("S: * 1 FETCH (UID 5 RFC822.SIZE {0} FLAGS (\\Seen) BODY[] {{{0}}}", body.len()),
            format!("S: [{} bytes redacted]", body.len()),
            "S:  INTERNALDATE \"02-Jan-2020 10:00:00 +0100\")".to_string(),
            "S: m3 OK done".to_string(),
        ]
    );
    assert_absent(&lines, &["MARKER"]);
}

#[test]
fn fetch_content_sent_as_quoted_strings_and_structures_is_redacted() {
    let lines = trace(
        Protocol::Imap,
        &[S(b"* 2 FETCH (UID 6 BODY[HEADER.FIELDS (SUBJECT)] \"Subject: MARKER\" ENVELOPE (\"date\" \"MARKER subj\" NIL ((NIL NIL \"ana\" \"x\"))) RFC822.TEXT NIL BODY[]<0> \"MARKER \\\" x\" FLAGS (\\Seen))\r\n")],
    );
    assert_eq!(
        lines,
        ["S: * 2 FETCH (UID 6 BODY[HEADER.FIELDS (SUBJECT)] [15 bytes redacted] ENVELOPE [structure redacted] RFC822.TEXT NIL BODY[]<0> [11 bytes redacted] FLAGS (\\Seen))"]
    );
}

#[test]
fn append_literals_are_counted_and_the_command_stays() {
    let body = b"From: a@b\r\nSubject: MARKER\r\n\r\nMARKER\r\n";
    let mut wire =
        format!("m4 APPEND \"INBOX\" (\\Seen $Work) \"02-Jan-2020 10:00:00 +0100\" {{{}+}}\r\n", body.len())
            .into_bytes();
    wire.extend_from_slice(body);
    wire.extend_from_slice(b"\r\nm5 APPEND \"INBOX\" ~{3+}\r\n\0\0\0\r\n");
    let lines = trace(Protocol::Imap, &[C(&wire), S(b"m4 OK [APPENDUID 7 9] done\r\n")]);
    assert_eq!(
        lines,
        [
            format!(
                "C: m4 APPEND \"INBOX\" (\\Seen $Work) \"02-Jan-2020 10:00:00 +0100\" {{{}+}}",
                body.len()
            ),
            format!("C: [{} bytes redacted]", body.len()),
            "C: m5 APPEND \"INBOX\" ~{3+}".to_string(),
            "C: [3 bytes redacted]".to_string(),
            "S: m4 OK [APPENDUID 7 9] done".to_string(),
        ]
    );
    assert_absent(&lines, &["MARKER"]);
}

#[test]
fn server_literals_outside_fetch_are_counted_too() {
    let lines = trace(Protocol::Imap, &[S(b"* LIST () \"/\" {6}\r\nPriv\xc3\xa9\r\n")]);
    assert_eq!(lines, ["S: * LIST () \"/\" {6}", "S: [6 bytes redacted]"]);
}

#[test]
fn pop3_pass_apop_and_auth_are_redacted() {
    let long = STANDARD.encode(b"user=ana\x01auth=Bearer ya29.TOKEN\x01\x01");
    let response = format!("{long}\r\n");
    let plain = STANDARD.encode(b"\0ana\0s3cret");
    let auth_plain = format!("AUTH PLAIN {plain}\r\n");
    let lines = trace(
        Protocol::Pop3,
        &[
            S(b"+OK POP3 ready <1.2@host>\r\n"),
            C(b"USER ana\r\n"),
            S(b"+OK\r\n"),
            C(b"PASS s3cret pass\r\n"),
            S(b"-ERR [AUTH] Authentication failed.\r\n"),
            C(b"APOP ana c4c9334bac560ecc979e58001b3e22fb\r\n"),
            S(b"-ERR no\r\n"),
            C(auth_plain.as_bytes()),
            S(b"-ERR no\r\n"),
            C(b"AUTH XOAUTH2\r\n"),
            S(b"+ \r\n"),
            C(response.as_bytes()),
            S(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"),
            C(b"\r\n"),
            S(b"-ERR [AUTH] Invalid\r\n"),
            C(b"QUIT\r\n"),
        ],
    );
    assert_eq!(
        lines,
        [
            "S: +OK POP3 ready <1.2@host>",
            "C: USER ana",
            "S: +OK",
            "C: PASS [redacted]",
            "S: -ERR [AUTH] Authentication failed.",
            "C: APOP ana [redacted]",
            "S: -ERR no",
            "C: AUTH PLAIN [redacted]",
            "S: -ERR no",
            "C: AUTH XOAUTH2",
            "S: + ",
            "C: [redacted]",
            "S: + eyJzdGF0dXMiOiI0MDEifQ==",
            "C: [redacted]",
            "S: -ERR [AUTH] Invalid",
            "C: QUIT",
        ]
    );
    assert_absent(&lines, &["s3cret", "c4c9334b", &long, &plain, "ya29"]);
}

#[test]
fn pop3_retr_and_top_bodies_are_counted_listings_shown() {
    let lines = trace(
        Protocol::Pop3,
        &[
            C(b"CAPA\r\n"),
            S(b"+OK\r\nTOP\r\nUIDL\r\n.\r\n"),
            C(b"UIDL\r\n"),
            S(b"+OK\r\n1 abc\r\n.\r\n"),
            C(b"RETR 1\r\n"),
            S(b"+OK 29 octets\r\nSubject: MARKER\r\n\r\n..MARK"),
            S(b"ER line\r\n+OK fake\r\n.\r\n"),
            C(b"TOP 1 0\r\n"),
            S(b"+OK\r\nSubject: MARKER\r\n\r\n.\r\n"),
            C(b"RETR 2\r\n"),
            S(b"-ERR no such message\r\n"),
            C(b"QUIT\r\n"),
            S(b"+OK bye\r\n"),
        ],
    );
    assert_eq!(
        lines,
        [
            "C: CAPA",
            "S: +OK",
            "S: TOP",
            "S: UIDL",
            "S: .",
            "C: UIDL",
            "S: +OK",
            "S: 1 abc",
            "S: .",
            "C: RETR 1",
            "S: +OK 29 octets",
            "S: [44 bytes redacted]",
            "S: .",
            "C: TOP 1 0",
            "S: +OK",
            "S: [19 bytes redacted]",
            "S: .",
            "C: RETR 2",
            "S: -ERR no such message",
            "C: QUIT",
            "S: +OK bye",
        ]
    );
    assert_absent(&lines, &["MARK"]);
}

#[test]
fn known_secrets_are_replaced_wherever_they_appear() {
    let mut redactor = Redactor::new(Protocol::Imap);
    redactor.add_secret("hunter22");
    redactor.add_secret("pw");
    let lines = trace_with(redactor, &[S(b"a1 NO password hunter22 is wrong, pw\r\n")]);
    assert_eq!(lines, ["S: a1 NO password [redacted] is wrong, pw"]);
}

#[test]
fn what_was_under_way_at_the_end_is_said_without_content() {
    let lines = trace(Protocol::Imap, &[S(b"* 1 FETCH (BODY[] {100}\r\nMARKER"), C(b"m9 NOO")]);
    assert_eq!(
        lines,
        [
            "S: * 1 FETCH (BODY[] {100}",
            "C: m9 NOO [the line did not end]",
            "S: [6 of 100 bytes redacted; the literal did not end]"
        ]
    );
    let lines = trace(Protocol::Pop3, &[C(b"RETR 1\r\n"), S(b"+OK\r\nMARKER\r\nMAR")]);
    assert_eq!(lines, ["C: RETR 1", "S: +OK", "S: [11 bytes redacted; the body did not end]"]);
}

#[test]
fn control_characters_and_invalid_bytes_are_escaped() {
    let lines = trace(Protocol::Imap, &[S(b"* OK h\x1bi \xff caf\xc3\xa9\r\n")]);
    assert_eq!(lines, ["S: * OK h\\x1bi \\xff caf\u{e9}"]);
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn trace_lines_have_a_utc_microsecond_time_a_number_and_a_direction() {
    let buffer = Shared::default();
    let trace = ProtocolTrace::to_writer(buffer.clone());
    let mut first = trace.with_role("source").connection(Protocol::Imap, "127.0.0.1:1143");
    let mut second = trace.clone().connection(Protocol::Pop3, "[::1]:110");
    first.add_secret("s3cret-pw");
    first.received(b"* OK ready\r\n");
    first.sent(b"a0001 LOGIN \"ana\" \"s3cret-pw\"\r\n");
    second.sent(b"PASS s3cret-pw\r\n");
    first.event("connect failed: s3cret-pw refused");
    // Written as they happen, before the connections end.
    assert!(buffer.text().contains("#2 pop3 C: PASS [redacted]"), "{}", buffer.text());
    drop((first, second));
    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("# mailmove protocol trace, started "), "{text}");
    let body: Vec<&str> = lines[1..]
        .iter()
        .map(|line| {
            let (time, rest) = line.split_once(' ').unwrap();
            let parsed = chrono::DateTime::parse_from_rfc3339(time).unwrap_or_else(|e| panic!("{time}: {e}"));
            assert_eq!(parsed.offset().local_minus_utc(), 0);
            assert!(time.ends_with('Z') && time.split('.').nth(1).unwrap().len() == 7, "{time}");
            rest
        })
        .collect();
    assert_eq!(
        body,
        [
            "#1 imap -- open imap source 127.0.0.1:1143",
            "#2 pop3 -- open pop3 [::1]:110",
            "#1 imap S: * OK ready",
            "#1 imap C: a0001 LOGIN \"ana\" [redacted]",
            "#2 pop3 C: PASS [redacted]",
            "#1 imap -- connect failed: [redacted] refused",
            "#1 imap -- closed",
            "#2 pop3 -- closed",
        ]
    );
}

#[test]
fn a_trace_file_is_readable_while_connections_are_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.txt");
    let trace = ProtocolTrace::to_file(&path).unwrap();
    assert_eq!(trace.path(), Some(path.as_path()));
    let mut connection = trace.connection(Protocol::Imap, "h:143");
    connection.sent(b"m1 CAPABILITY\r\n");
    // No flush, no drop: what a crash would leave.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("#1 imap C: m1 CAPABILITY"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o077, 0);
    }
    let error = ProtocolTrace::to_file(dir.path().join("missing/trace.txt")).unwrap_err();
    assert!(error.to_string().contains("missing/trace.txt"), "{error}");
    assert!(matches!(mailmove_core::Error::from(error), mailmove_core::Error::Io { .. }));
}

#[test]
fn the_global_trace_is_the_default_of_connections_without_one() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<ProtocolTrace>();
    let buffer = Shared::default();
    let mine = ProtocolTrace::to_writer(Shared::default());
    clear_global();
    assert!(resolve(None).is_none());
    set_global(ProtocolTrace::to_writer(buffer.clone()));
    let chosen = resolve(None).expect("the global trace");
    drop(chosen.connection(Protocol::Imap, "h:1"));
    assert!(buffer.text().contains("#1 imap -- open imap h:1"), "{}", buffer.text());
    // A configured trace wins.
    drop(resolve(Some(&mine)).unwrap().connection(Protocol::Imap, "h:2"));
    assert!(!buffer.text().contains("h:2"));
    assert!(clear_global().is_some());
    assert!(global().is_none());
}

#[test]
fn directions_have_their_letters() {
    assert_eq!((Direction::Client.letter(), Direction::Server.letter()), ('C', 'S'));
}
