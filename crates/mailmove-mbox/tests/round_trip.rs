//! Sink → source round trips: random bodies (proptest) and every message of the shared corpus,
//! byte-exact with flags (or, for the one shape of the random bodies the format cannot hold
//! exactly, in its closest form and named).

use std::path::Path;

use chrono::{TimeZone, Utc};
use mailmove_core::fingerprint::strict_of_bytes;
use mailmove_core::{
    Appended, Flags, FolderPath, MailSink, MailSourceExt, Message, MessageBody, MessageMeta,
};
use mailmove_mbox::{MboxConfig, MboxStore};
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Writes `messages` through the sink into a fresh file, flushes, reads them back through the
/// source: (bytes, flags, internal date) in order, and what each append said. Every message is
/// accepted (none is refused: one the format cannot hold exactly is stored altered, and named).
async fn through_mbox_appended(
    dir: &Path,
    messages: &[Message],
) -> (Vec<(Vec<u8>, Flags, Option<i64>)>, Vec<Appended>) {
    let store = MboxStore::open(MboxConfig::new(dir.join("rt.mbox"))).unwrap();
    let inbox = FolderPath::inbox();
    store.create_folder(&inbox).await.unwrap();
    let mut appended = Vec::new();
    for message in messages {
        appended.push(store.append(&inbox, message).await.unwrap());
    }
    store.flush(&inbox).await.unwrap();
    let mut out = Vec::new();
    for meta in store.collect_messages(&inbox).await.unwrap() {
        let fetched = store.fetch_one(&inbox, &meta.key).await.unwrap();
        // What the writer wrote reads back with its boundaries certain.
        assert!(
            fetched.meta.damage.is_none()
                || fetched.meta.damage.as_deref().is_some_and(|d| d.contains("no header")),
            "{:?}",
            fetched.meta.damage
        );
        out.push((
            fetched.body.to_bytes().unwrap().to_vec(),
            fetched.meta.flags,
            fetched.meta.internal_date.map(|d| d.timestamp()),
        ));
    }
    // Dedup sees the messages as the source yields them.
    let existing = mailmove_core::MailSinkExt::collect_existing(&store, &inbox).await.unwrap();
    let yielded: Vec<_> = out.iter().map(|(bytes, _, _)| strict_of_bytes(bytes)).collect();
    assert_eq!(existing.iter().map(|e| e.fingerprint).collect::<Vec<_>>(), yielded);
    // An altered copy says what the reader gives back, when that is not the message's own.
    assert_eq!(appended.len(), out.len());
    for ((message, appended), (bytes, _, _)) in messages.iter().zip(&appended).zip(&out) {
        let original = message.body.to_bytes().unwrap();
        match &appended.alteration {
            None => assert_eq!(&original[..], &bytes[..]),
            Some(alteration) => assert_eq!(
                alteration.stored_fingerprint.unwrap_or_else(|| strict_of_bytes(&original)),
                strict_of_bytes(bytes),
                "{}",
                alteration.what
            ),
        }
    }
    (out, appended)
}

async fn through_mbox(dir: &Path, messages: &[Message]) -> Vec<(Vec<u8>, Flags, Option<i64>)> {
    through_mbox_appended(dir, messages).await.0
}

/// The one shape of these messages the writer cannot store exactly (see the writer): no header
/// block, white space first (so no header line can go before it), and no final newline (so it
/// needs the writer's mark). It is stored with a final newline, and named.
fn needs_final_newline_added(bytes: &[u8]) -> bool {
    let has_blank_line = bytes.starts_with(b"\n")
        || bytes.starts_with(b"\r\n")
        || bytes.windows(2).any(|w| w == b"\n\n")
        || bytes.windows(3).any(|w| w == b"\n\r\n");
    let needs_mark = !bytes.is_empty()
        && !bytes.ends_with(b"\n")
        && (!bytes.ends_with(b"\n\r") || bytes.ends_with(b"\r\n\r"));
    !has_blank_line && matches!(bytes.first(), Some(b' ' | b'\t')) && needs_mark
}

/// What the reader gives back for `bytes`: the closest form the mbox holds.
fn closest_form(bytes: &[u8]) -> Vec<u8> {
    if needs_final_newline_added(bytes) {
        [bytes, b"\n"].concat()
    } else {
        bytes.to_vec()
    }
}

fn line_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("From me@example.org Mon Jan  1 00:00:00 2024".to_string()),
        Just("From here on we".to_string()),
        Just("From ".to_string()),
        // Bare CRs: a message may end in `\r`, `\n\r` or `\r\n\r`.
        Just("\r".to_string()),
        Just("cr\r".to_string()),
        Just(">From quoted".to_string()),
        Just(">>From twice".to_string()),
        Just(">>>>From many".to_string()),
        Just(">".to_string()),
        Just("From".to_string()),
        Just(String::new()),
        Just(" folded".to_string()),
        Just("X-Header: value".to_string()),
        "[a-zA-Z>:. ]{0,12}",
    ]
}

prop_compose! {
    fn arb_message()(
        lines in proptest::collection::vec((line_strategy(), any::<bool>()), 0..12),
        final_newline: bool,
        crlf_bias in 0u8..3,
        seen: bool, answered: bool, flagged: bool, deleted: bool, draft: bool,
        keywords in proptest::collection::btree_set("[$A-Za-z][A-Za-z0-9_]{0,8}", 0..3),
        seconds in 0i64..4_000_000_000,
    ) -> (Vec<u8>, Flags, i64) {
        let mut bytes = Vec::new();
        for (index, (line, crlf)) in lines.iter().enumerate() {
            bytes.extend_from_slice(line.as_bytes());
            if index + 1 < lines.len() || final_newline {
                // 0: all LF, 1: all CRLF, 2: mixed.
                let crlf = match crlf_bias { 0 => false, 1 => true, _ => *crlf };
                bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
        }
        (bytes, Flags { seen, answered, flagged, deleted, draft, keywords }, seconds)
    }
}

/// The flags the mbox keeps for a message (see the writer: a header-less message starting with
/// white space cannot take flag lines).
fn stored_flags(bytes: &[u8], flags: &Flags) -> Flags {
    let has_blank_line = bytes.starts_with(b"\n")
        || bytes.starts_with(b"\r\n")
        || bytes.windows(2).any(|w| w == b"\n\n")
        || bytes.windows(3).any(|w| w == b"\n\r\n");
    if !has_blank_line && matches!(bytes.first(), Some(b' ' | b'\t')) {
        Flags::default()
    } else {
        flags.clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn random_messages_round_trip_exactly_or_named(
        messages in proptest::collection::vec(arb_message(), 1..4)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let input: Vec<Message> = messages
            .iter()
            .map(|(bytes, flags, seconds)| {
                let date = Utc.timestamp_opt(*seconds, 0).unwrap().fixed_offset();
                let meta = MessageMeta::new("p", 0).with_flags(flags.clone()).with_internal_date(Some(date));
                Message::new(meta, MessageBody::from_bytes(bytes.clone()))
            })
            .collect();
        let (output, appended) = runtime().block_on(through_mbox_appended(dir.path(), &input));
        prop_assert_eq!(output.len(), messages.len());
        for (((bytes, flags, seconds), (got_bytes, got_flags, got_date)), appended) in
            messages.iter().zip(&output).zip(&appended)
        {
            let expected = closest_form(bytes);
            prop_assert_eq!(String::from_utf8_lossy(got_bytes), String::from_utf8_lossy(&expected));
            prop_assert_eq!(appended.alteration.is_some(), needs_final_newline_added(bytes));
            prop_assert_eq!(got_flags, &stored_flags(bytes, flags));
            prop_assert_eq!(*got_date, Some(*seconds));
        }
    }
}

#[test]
fn corpus_round_trips_byte_exact_with_flags() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus");
    if !Path::new(root).is_dir() {
        println!("note: {root} not found; corpus round trip skipped");
        return;
    }
    let mut files: Vec<_> = ["malformed", "thirdparty"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(Path::new(root).join(sub)).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "corpus has {} messages", files.len());
    let flag_sets = [
        Flags::empty(),
        Flags::from_imap_list(["\\Seen"]),
        Flags::from_imap_list(["\\Seen", "\\Answered", "\\Flagged", "$Forwarded"]),
        Flags::from_imap_list(["\\Draft", "\\Deleted", "Work", "$Junk"]),
    ];
    let messages: Vec<Message> = files
        .iter()
        .enumerate()
        .map(|(index, path)| {
            let bytes = std::fs::read(path).unwrap();
            let date = Utc.timestamp_opt(1_600_000_000 + index as i64 * 3601, 0).unwrap().fixed_offset();
            let meta = MessageMeta::new(path.display().to_string(), 0)
                .with_flags(flag_sets[index % flag_sets.len()].clone())
                .with_internal_date(Some(date));
            Message::new(meta, MessageBody::from_bytes(bytes))
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let output = runtime().block_on(through_mbox(dir.path(), &messages));
    assert_eq!(output.len(), messages.len());
    for ((path, message), (bytes, flags, date)) in files.iter().zip(&messages).zip(&output) {
        let original = message.body.to_bytes().unwrap();
        assert!(original[..] == bytes[..], "{} changed on the way through the mbox", path.display());
        assert_eq!(flags, &message.meta.flags, "{}", path.display());
        assert_eq!(*date, message.meta.internal_date.map(|d| d.timestamp()), "{}", path.display());
    }
}

#[test]
fn messages_with_their_own_content_length() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = MboxStore::open(MboxConfig::new(dir.path().join("cl.mbox"))).unwrap();
    let inbox = FolderPath::inbox();
    let make = |bytes: &str| {
        Message::new(MessageMeta::new("c", 0), MessageBody::from_bytes(bytes.as_bytes().to_vec()))
    };
    // Correct length, nothing to quote: the reader trusts it and gets the same bytes.
    let plain = "Subject: a\nContent-Length: 6\n\nhello\n";
    // Correct length before quoting: quoting changes the length, so it is not trusted.
    let quoted = "Subject: b\nContent-Length: 11\n\nFrom there\n";
    // A length that would count the quoted body exactly: the reader would trust it and keep the
    // quoting `>`, so it is stored with a line ending added (and named), which it does not count.
    let ambiguous = "Subject: c\nContent-Length: 12\n\nFrom there\n";
    // The same without a final newline: the mark's newline follows the body, not a blank line,
    // so the length cannot be trusted, and the message is stored.
    let marked = "Subject: d\nContent-Length: 11\n\nFrom there";
    let outcome = runtime.block_on(async {
        store.create_folder(&inbox).await.unwrap();
        let mut appended = Vec::new();
        for bytes in [plain, quoted, ambiguous, marked] {
            appended.push(store.append(&inbox, &make(bytes)).await.unwrap());
        }
        store.flush(&inbox).await.unwrap();
        let mut bodies = Vec::new();
        for meta in store.collect_messages(&inbox).await.unwrap() {
            bodies.push(store.fetch_one(&inbox, &meta.key).await.unwrap().body.to_bytes().unwrap().to_vec());
        }
        (appended, bodies)
    });
    let altered: Vec<bool> = outcome.0.iter().map(|appended| appended.alteration.is_some()).collect();
    assert_eq!(altered, [false, false, true, false]);
    let stored = format!("{ambiguous}\n");
    assert_eq!(
        outcome.1,
        [plain.as_bytes(), quoted.as_bytes(), stored.as_bytes(), marked.as_bytes()].map(<[u8]>::to_vec)
    );
    let alteration = outcome.0[2].alteration.as_ref().unwrap();
    assert!(alteration.what.contains("Content-Length (12)"), "{}", alteration.what);
    assert_eq!(alteration.stored_fingerprint, Some(strict_of_bytes(stored.as_bytes())));
}

#[test]
fn messages_without_final_newline_keep_it_and_leave_a_blank_line() {
    let bodies: [&[u8]; 5] = [
        b"Subject: a\n\nno final newline",
        b"Subject: b\r\n\r\nFrom me@example.org Mon Jan  1 00:00:00 2024\r\nends in a bare CR after CRLF\r\n\r",
        b"no header and no final newline",
        b"Subject: d\n\nends in LF then CR\n\r",
        b"Subject: e\n\nlast",
    ];
    let messages: Vec<Message> = bodies
        .iter()
        .map(|bytes| Message::new(MessageMeta::new("n", 0), MessageBody::from_bytes(bytes.to_vec())))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let output = runtime().block_on(through_mbox(dir.path(), &messages));
    let got: Vec<&[u8]> = output.iter().map(|(bytes, _, _)| &bytes[..]).collect();
    assert_eq!(got, bodies);
    // In the file every separator follows a blank line, so other readers find the same messages
    // (with a final newline added to those that had none).
    let file = std::fs::read(dir.path().join("rt.mbox")).unwrap();
    let separators: Vec<usize> =
        (0..file.len()).filter(|&i| file[i..].starts_with(b"From MAILER-DAEMON ")).collect();
    assert_eq!(separators.len(), bodies.len());
    for at in &separators[1..] {
        assert!(
            file[..*at].ends_with(b"\n\n") || file[..*at].ends_with(b"\n\r\n"),
            "no blank line before {at}"
        );
    }
    assert_eq!(file.windows(29).filter(|w| w == b"X-Mailmove-No-Final-Newline: ").count(), 4);
}
