//! Messages the mbox cannot hold exactly are stored in their closest form and named, never
//! refused: the append's `Appended::alteration` says what changed and, when what the reader gives
//! back fingerprints differently, carries that fingerprint.

use mailmove_core::fingerprint::strict_of_bytes;
use mailmove_core::{
    Appended, Flags, FolderPath, MailSink, MailSinkExt, MailSourceExt, Message, MessageBody, MessageMeta,
};
use mailmove_mbox::{MboxConfig, MboxStore};
use proptest::prelude::*;

fn message(bytes: &[u8]) -> Message {
    Message::new(MessageMeta::new("m", 0), MessageBody::from_bytes(bytes.to_vec()))
}

/// A fresh single-file mbox.
async fn fresh(dir: &std::path::Path) -> MboxStore {
    let store = MboxStore::open(MboxConfig::new(dir.join("box.mbox"))).unwrap();
    store.create_folder(&FolderPath::inbox()).await.unwrap();
    store
}

/// Every message of the folder as the source yields it, and the sink's listing agrees.
async fn read_all(store: &MboxStore) -> Vec<Vec<u8>> {
    let inbox = FolderPath::inbox();
    store.flush(&inbox).await.unwrap();
    let mut bodies = Vec::new();
    for meta in store.collect_messages(&inbox).await.unwrap() {
        bodies.push(store.fetch_one(&inbox, &meta.key).await.unwrap().body.to_bytes().unwrap().to_vec());
    }
    let listed: Vec<_> =
        store.collect_existing(&inbox).await.unwrap().into_iter().map(|e| e.fingerprint).collect();
    assert_eq!(listed, bodies.iter().map(|b| strict_of_bytes(b)).collect::<Vec<_>>());
    bodies
}

/// Appends `original` alone, then a plain message after it: the message reads back as `expected`
/// both while it is the file's last and once a message follows; the append named an alteration
/// whose text contains `named`, and its stored fingerprint is right. Returns the alteration.
async fn check_altered(original: &[u8], expected: &[u8], named: &str) -> mailmove_core::stored::Alteration {
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(dir.path()).await;
    let appended = store.append(&FolderPath::inbox(), &message(original)).await.unwrap();
    let alone = read_all(&store).await;
    store.append(&FolderPath::inbox(), &message(b"Subject: next\n\nnext\n")).await.unwrap();
    let followed = read_all(&store).await;
    let shown = String::from_utf8_lossy(original);
    assert_eq!(String::from_utf8_lossy(&alone[0]), String::from_utf8_lossy(expected), "{shown:?}");
    assert_eq!(followed[0], alone[0], "{shown:?} reads alike last and followed");
    assert_eq!(followed[1], b"Subject: next\n\nnext\n");
    let alteration = appended.alteration.unwrap_or_else(|| panic!("{shown:?} is not named as altered"));
    assert!(alteration.what.contains(named), "{shown:?}: {}", alteration.what);
    check_stored_fingerprint(original, &alteration, expected);
    alteration
}

/// The stored fingerprint is the read-back message's, and is set exactly when that differs from
/// the original's.
fn check_stored_fingerprint(
    original: &[u8],
    alteration: &mailmove_core::stored::Alteration,
    read_back: &[u8],
) {
    let (original, read_back) = (strict_of_bytes(original), strict_of_bytes(read_back));
    match alteration.stored_fingerprint {
        Some(stored) => assert!(stored == read_back && stored != original, "{}", alteration.what),
        None => assert_eq!(read_back, original, "{}", alteration.what),
    }
}

#[tokio::test]
async fn a_final_bare_cr_the_mark_cannot_keep_gets_a_final_line_feed() {
    // No header, white space first: no header line (the mark) can go before it. Once refused.
    let original = b" no header, ends in a bare CR\r";
    let alteration = check_altered(original, b" no header, ends in a bare CR\r\n", "bare CR").await;
    assert!(alteration.what.contains("final line feed"), "{}", alteration.what);
    // CR and CRLF are one line ending to the strict fingerprint: unchanged.
    assert_eq!(alteration.stored_fingerprint, None);

    let original = b" no header\n\tand no final newline";
    let alteration = check_altered(original, b" no header\n\tand no final newline\n", "final newline").await;
    assert_eq!(alteration.stored_fingerprint, Some(strict_of_bytes(b" no header\n\tand no final newline\n")));
}

#[tokio::test]
async fn a_content_length_the_reader_would_trust_wrongly_is_moved_off_by_line_endings() {
    let cases: [(&[u8], &[u8]); 5] = [
        // Counts the body after quoting: the reader would keep the `>` (once refused).
        (
            b"Subject: c\nContent-Length: 12\n\nFrom there\n",
            b"Subject: c\nContent-Length: 12\n\nFrom there\n\n",
        ),
        (
            b"Subject: c\r\nContent-Length: 13\r\n\r\nFrom there\r\n",
            b"Subject: c\r\nContent-Length: 13\r\n\r\nFrom there\r\n\r\n",
        ),
        // Counts the separator's blank line: trusted only while the message is the file's last.
        (b"Subject: a\nContent-Length: 7\n\nhello\n", b"Subject: a\nContent-Length: 7\n\nhello\n\n\n"),
        // Counts the mark's newline: the message would read back with it.
        (b"Subject: b\nContent-Length: 4\n\nabc", b"Subject: b\nContent-Length: 4\n\nabc\n"),
        // Leaves out a final CR: the reader would lose it.
        (b"Subject: d\nContent-Length: 4\n\nabc\n\r", b"Subject: d\nContent-Length: 4\n\nabc\n\r\n"),
    ];
    for (original, expected) in cases {
        check_altered(original, expected, "Content-Length").await;
    }
}

#[tokio::test]
async fn own_flag_lines_are_removed_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(dir.path()).await;
    let inbox = FolderPath::inbox();
    let original =
        b"Subject: s\nStatus: O\nX-Keywords: Work\n  Urgent\nX-Status: A\n\nStatus: in the body stays\n";
    let meta = MessageMeta::new("m", 0).with_flags(Flags::from_imap_list(["\\Seen", "$Label1"]));
    let appended =
        store.append(&inbox, &Message::new(meta, MessageBody::from_bytes(original.to_vec()))).await.unwrap();
    let expected = b"Subject: s\n\nStatus: in the body stays\n";
    assert_eq!(read_all(&store).await, [expected.to_vec()]);
    let fetched =
        store.fetch_one(&inbox, &store.collect_messages(&inbox).await.unwrap()[0].key).await.unwrap();
    assert_eq!(fetched.meta.flags, Flags::from_imap_list(["\\Seen", "$Label1"]), "the message's flags");
    let alteration = appended.alteration.expect("named");
    assert!(alteration.what.contains("Status, X-Keywords, X-Status"), "{}", alteration.what);
    assert_eq!(alteration.stored_fingerprint, Some(strict_of_bytes(expected)));

    // The writer's own mark, carried by a message that needs none.
    let alteration = check_altered(
        b"X-Mailmove-No-Final-Newline: yes\nSubject: m\n\nx\n",
        b"Subject: m\n\nx\n",
        "X-Mailmove",
    )
    .await;
    assert!(alteration.stored_fingerprint.is_some());
}

#[tokio::test]
async fn exactly_stored_messages_are_not_altered() {
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(dir.path()).await;
    let originals: [&[u8]; 4] = [
        b"Subject: a\n\nno final newline",
        b"Subject: b\n\nends in a bare CR\r",
        b"Subject: c\nContent-Length: 6\n\nhello\n",
        b"no header, no final newline, no white space first",
    ];
    for original in originals {
        let appended = store.append(&FolderPath::inbox(), &message(original)).await.unwrap();
        assert_eq!(appended.alteration, None, "{:?}", String::from_utf8_lossy(original));
    }
    assert_eq!(read_all(&store).await, originals.map(<[u8]>::to_vec));
}

#[tokio::test]
async fn a_message_once_refused_is_stored_between_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(dir.path()).await;
    let inbox = FolderPath::inbox();
    let bodies: [&[u8]; 3] = [b"Subject: 1\n\none\n", b" folded? no: text", b"Subject: 3\n\nthree\n"];
    let appended: Vec<Appended> = {
        let mut out = Vec::new();
        for body in bodies {
            out.push(store.append(&inbox, &message(body)).await.unwrap());
        }
        out
    };
    assert_eq!(appended.iter().map(|a| a.alteration.is_some()).collect::<Vec<_>>(), [false, true, false]);
    assert_eq!(
        read_all(&store).await,
        [b"Subject: 1\n\none\n".to_vec(), b" folded? no: text\n".to_vec(), b"Subject: 3\n\nthree\n".to_vec()]
    );
}

fn body_lines() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(&b"From x\n"[..]),
            Just(&b">From y\r\n"[..]),
            Just(&b"\n"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"\r"[..]),
            Just(&b"text"[..]),
            Just(&b"Status: RO\n"[..]),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Every Content-Length near the end of a body: the message reads back the same while it is
    /// the file's last and once another follows, exactly when not named, and with the named
    /// stored fingerprint when named.
    #[test]
    fn content_lengths_never_misread(body in body_lines(), crlf: bool) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (originals, appended, last, all) = runtime.block_on(async {
            let store = fresh(dir.path()).await;
            let (mut originals, mut appended, mut last) = (Vec::new(), Vec::new(), Vec::new());
            for length in 0..body.len() as u64 + 4 {
                let mut original = format!("Subject: p{eol}Content-Length: {length}{eol}{eol}").into_bytes();
                original.extend_from_slice(&body);
                appended.push(store.append(&FolderPath::inbox(), &message(&original)).await.unwrap());
                last.push(read_all(&store).await.pop().unwrap());
                originals.push(original);
            }
            (originals, appended, last, read_all(&store).await)
        });
        prop_assert_eq!(&all, &last);
        for ((original, appended), read_back) in originals.iter().zip(&appended).zip(&all) {
            match &appended.alteration {
                None => {
                    prop_assert_eq!(String::from_utf8_lossy(read_back), String::from_utf8_lossy(original))
                }
                Some(alteration) => {
                    check_stored_fingerprint(original, alteration, read_back);
                    // The closest form keeps every byte: at most line endings are added at its end
                    // (a `Status:` line in the body is body text, and stays).
                    prop_assert!(read_back.starts_with(original), "{:?}", String::from_utf8_lossy(read_back));
                    prop_assert!(read_back[original.len()..].iter().all(|b| matches!(b, b'\r' | b'\n')));
                }
            }
        }
    }
}
