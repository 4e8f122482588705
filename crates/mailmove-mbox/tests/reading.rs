//! Reading mbox files written by others: every variant and every kind of damage.

use std::path::Path;

use futures::StreamExt;
use mailmove_core::{FolderPath, MailSource, MailSourceExt, MessageMeta, SourceKey};
use mailmove_mbox::{MboxConfig, MboxStore, MboxWarning, MozillaExpunged, WarningKind};

fn store_for(dir: &Path, bytes: &[u8]) -> MboxStore {
    let path = dir.join("box.mbox");
    std::fs::write(&path, bytes).unwrap();
    MboxStore::open(MboxConfig::new(path)).unwrap()
}

async fn read_store(store: &MboxStore) -> Vec<(Vec<u8>, MessageMeta)> {
    let inbox = FolderPath::inbox();
    let metas = store.collect_messages(&inbox).await.unwrap();
    let mut out = Vec::new();
    for meta in metas {
        let message = store.fetch_one(&inbox, &meta.key).await.unwrap();
        assert_eq!(message.meta, meta, "fetched metadata equals listed metadata");
        out.push((message.body.to_bytes().unwrap().to_vec(), meta));
    }
    out
}

async fn read(bytes: &[u8]) -> (Vec<Vec<u8>>, Vec<MessageMeta>, Vec<MboxWarning>) {
    let dir = tempfile::tempdir().unwrap();
    let store = store_for(dir.path(), bytes);
    let messages = read_store(&store).await;
    let (bodies, metas) = messages.into_iter().unzip();
    (bodies, metas, store.warnings())
}

fn kinds(warnings: &[MboxWarning]) -> Vec<WarningKind> {
    warnings.iter().map(|w| w.kind).collect()
}

#[tokio::test]
async fn mboxrd_unquotes_one_level() {
    let file = b"From a@b Sat Jan  3 01:05:34 1996\nSubject: q\n\n>From here\n>>From there\n>>>From x\n> From not\nFrom\n\nFrom b@c Sat Jan  3 01:05:35 1996\nSubject: two\n\nend\n\n";
    let (bodies, metas, warnings) = read(file).await;
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], b"Subject: q\n\nFrom here\n>From there\n>>From x\n> From not\nFrom\n");
    assert_eq!(bodies[1], b"Subject: two\n\nend\n");
    assert_eq!(metas[0].internal_date.unwrap().timestamp(), 820_631_134);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[tokio::test]
async fn mboxo_is_read_as_mboxrd() {
    // mboxo quotes "From " as ">From " and leaves ">From " alone: both read back as "From ".
    let file = b"From a Sat Jan  3 01:05:34 1996\nSubject: o\n\n>From quoted by mboxo\n\n";
    let (bodies, _, _) = read(file).await;
    assert_eq!(bodies, [b"Subject: o\n\nFrom quoted by mboxo\n".to_vec()]);
}

#[tokio::test]
async fn crlf_and_mixed_line_endings_are_kept() {
    let file = b"From - Mon Jan 01 10:00:00 2024\r\nSubject: crlf\r\n\r\nbody\r\n\r\nFrom - Mon Jan 01 10:00:01 2024\r\nSubject: mixed\n\r\nline\r\nother\n\nFrom - Mon Jan 01 10:00:02 2024\nSubject: cr\r\n\r\nends with CRLF then LF sep\r\n\n";
    let (bodies, metas, warnings) = read(file).await;
    assert_eq!(bodies[0], b"Subject: crlf\r\n\r\nbody\r\n");
    assert_eq!(bodies[1], b"Subject: mixed\n\r\nline\r\nother\n");
    assert_eq!(bodies[2], b"Subject: cr\r\n\r\nends with CRLF then LF sep\r\n");
    assert_eq!(metas.len(), 3);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[tokio::test]
async fn junk_before_first_from_is_imported_and_reported() {
    let file = b"this is junk\nmore junk\n\nFrom a Sat Jan  3 01:05:34 1996\nSubject: real\n\nx\n\n";
    let (bodies, metas, warnings) = read(file).await;
    assert_eq!(bodies, [b"this is junk\nmore junk\n".to_vec(), b"Subject: real\n\nx\n".to_vec()]);
    assert!(metas[0].key.as_str().starts_with("0-"));
    assert_eq!(metas[0].internal_date, None);
    assert_eq!(kinds(&warnings), [WarningKind::JunkBeforeFirstFrom]);
    assert_eq!(warnings[0].key.as_deref(), Some(metas[0].key.as_str()));
}

#[tokio::test]
async fn leading_blank_lines_are_skipped_and_reported() {
    let (bodies, _, warnings) = read(b"\n\r\n\nFrom a Sat Jan  3 01:05:34 1996\nSubject: s\n\nx\n\n").await;
    assert_eq!(bodies, [b"Subject: s\n\nx\n".to_vec()]);
    assert_eq!(kinds(&warnings), [WarningKind::LeadingBlankLinesSkipped]);
}

#[tokio::test]
async fn missing_final_newline_and_truncation_are_reported() {
    let (bodies, metas, warnings) =
        read(b"From a Sat Jan  3 01:05:34 1996\nSubject: t\n\ncut in the mid").await;
    assert_eq!(bodies, [b"Subject: t\n\ncut in the mid".to_vec()]);
    assert_eq!(kinds(&warnings), [WarningKind::MissingFinalNewline]);
    assert!(metas[0].damage.as_deref().unwrap().contains("probably truncated"), "{metas:?}");

    let file = b"From a Sat Jan  3 01:05:34 1996\nSubject: t\nContent-Length: 500\n\nonly a little\n";
    let (bodies, metas, warnings) = read(file).await;
    assert_eq!(bodies, [b"Subject: t\nContent-Length: 500\n\nonly a little".to_vec()]);
    assert_eq!(kinds(&warnings), [WarningKind::TruncatedMessage]);
    assert!(metas[0].damage.as_deref().unwrap().contains("truncated"), "{metas:?}");

    let (bodies, metas, warnings) = read(b"From a Sat Jan  3 01:05:34 1996").await;
    assert_eq!(bodies, [Vec::<u8>::new()]);
    assert!(kinds(&warnings).contains(&WarningKind::MissingFinalNewline));
    assert!(metas[0].damage.is_some());
}

#[tokio::test]
async fn from_line_without_date_at_the_start_is_junk_and_header_less_messages() {
    // "From someone yesterday" has no date: not a separator, so it is text of the junk before
    // the first separator (kept with its bytes, damaged). After it, a message with an empty
    // header: no header section after another message, the sign of a split.
    let file = b"From someone yesterday\njust a body\nwithout headers\n\nFrom a Sat Jan  3 01:05:34 1996\n\nempty header\n\n";
    let (bodies, metas, warnings) = read(file).await;
    assert_eq!(
        bodies,
        [b"From someone yesterday\njust a body\nwithout headers\n".to_vec(), b"\nempty header\n".to_vec()]
    );
    assert_eq!(metas[0].internal_date, None);
    assert!(metas[0].damage.as_deref().unwrap().contains("before the first separator"));
    let second = file.windows(6).position(|w| w == b"From a").unwrap();
    assert!(metas[1].damage.as_deref().unwrap().contains(&format!("byte offset {second}")));
    assert_eq!(
        kinds(&warnings),
        [WarningKind::BadFromLine, WarningKind::JunkBeforeFirstFrom, WarningKind::SplitByFromLine]
    );

    // A header-less first message is a warning only: its boundaries are certain.
    let (bodies, metas, warnings) = read(b"From a Sat Jan  3 01:05:34 1996\njust text\n\n").await;
    assert_eq!(bodies, [b"just text\n".to_vec()]);
    assert_eq!(metas[0].damage, None);
    assert_eq!(kinds(&warnings), [WarningKind::NoHeader]);
}

#[tokio::test]
async fn content_length_trusted_only_when_it_lands() {
    // mboxcl2: nothing quoted, so a dated From line after a blank line is in the body.
    let body = "line one\n\nFrom joe Sat Jan  3 01:05:34 1996\n>From stays quoted\n";
    let good = format!(
        "From a Sat Jan  3 01:05:34 1996\nSubject: cl\nContent-Length: {}\n\n{body}\nFrom b Sat Jan  3 01:05:35 1996\nSubject: next\n\nn\n\n",
        body.len()
    );
    let (bodies, metas, warnings) = read(good.as_bytes()).await;
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], format!("Subject: cl\nContent-Length: {}\n\n{body}", body.len()).into_bytes());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(metas.iter().all(|m| m.damage.is_none()));

    // Wrong by one either way: it does not land and is ignored; the dated From line after the
    // blank line splits the message. The length reaches past that separator, which the first
    // part names; the second part has no header, which it names.
    let split_at = good.find("From joe").unwrap();
    for length in [body.len() - 1, body.len() + 1] {
        let wrong = good.replacen(
            &format!("Content-Length: {}", body.len()),
            &format!("Content-Length: {length}"),
            1,
        );
        let (bodies, metas, warnings) = read(wrong.as_bytes()).await;
        assert_eq!(bodies.len(), 3);
        assert!(bodies[0].ends_with(b"\n\nline one\n"));
        assert_eq!(bodies[1], b"From stays quoted\n");
        let first = metas[0].damage.as_deref().unwrap();
        assert!(
            first.contains("Content-Length") && first.contains(&format!("byte offset {split_at}")),
            "{first}"
        );
        assert!(metas[1].damage.as_deref().unwrap().contains(&format!("byte offset {split_at}")));
        assert_eq!(metas[2].damage, None);
        assert_eq!(kinds(&warnings), [WarningKind::ContentLengthIgnored, WarningKind::SplitByFromLine]);
    }

    // A stale length shorter than the message, with nothing in between: ignored quietly.
    let stale = b"From a Sat Jan  3 01:05:34 1996\nContent-Length: 2\n\nlonger than two\n\nFrom b Sat Jan  3 01:05:35 1996\nSubject: n\n\nn\n\n";
    let (bodies, metas, warnings) = read(stale).await;
    assert_eq!(bodies[0], b"Content-Length: 2\n\nlonger than two\n");
    assert!(metas.iter().all(|m| m.damage.is_none()) && warnings.is_empty(), "{warnings:?}");

    // A length landing on a From line without a date is not trusted: that is not a separator.
    let undated = good.replace("From b Sat Jan  3 01:05:35 1996", "From b, with regards");
    let (bodies, _, _) = read(undated.as_bytes()).await;
    // So the body's dated From line is the only separator after the first.
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1], b"From stays quoted\n\nFrom b, with regards\nSubject: next\n\nn\n");

    // Content-Length at the end of the file with CRLF.
    let crlf = b"From a Sat Jan  3 01:05:34 1996\r\nContent-Length: 3\r\n\r\nabc\r\n";
    let (bodies, _, _) = read(crlf).await;
    assert_eq!(bodies, [b"Content-Length: 3\r\n\r\nabc".to_vec()]);
}

#[tokio::test]
async fn flag_headers_become_flags_and_leave_the_bytes() {
    let file = b"From a Sat Jan  3 01:05:34 1996\nSubject: f\nStatus: RO\nX-Status: AF\nX-Keywords: $Forwarded Work\nX-Gmail-Labels: Inbox,\"Foo, Bar\"\nMessage-ID: <m@x>\n\nbody\n\n";
    let (bodies, metas, _) = read(file).await;
    assert_eq!(bodies[0], b"Subject: f\nX-Gmail-Labels: Inbox,\"Foo, Bar\"\nMessage-ID: <m@x>\n\nbody\n");
    let flags = &metas[0].flags;
    assert!(flags.seen && flags.answered && flags.flagged && !flags.draft && !flags.deleted);
    assert_eq!(flags.keywords.iter().collect::<Vec<_>>(), ["$Forwarded", "Work"]);
    assert_eq!(metas[0].labels, ["Inbox", "Foo, Bar"]);
    assert_eq!(metas[0].message_id.as_deref(), Some("<m@x>"));
    assert_eq!(metas[0].size, bodies[0].len() as u64);
}

#[tokio::test]
async fn mozilla_expunged_skipped_by_default_kept_on_request() {
    let file = b"From - Sat Jan  3 01:05:34 1996\nX-Mozilla-Status: 0009\nSubject: gone\n\nx\n\nFrom - Sat Jan  3 01:05:35 1996\nX-Mozilla-Status: 0005\nSubject: here\n\ny\n\n";
    let (bodies, metas, warnings) = read(file).await;
    assert_eq!(bodies, [b"X-Mozilla-Status: 0005\nSubject: here\n\ny\n".to_vec()]);
    assert!(metas[0].flags.seen && metas[0].flags.flagged);
    assert_eq!(kinds(&warnings), [WarningKind::MozillaExpungedSkipped]);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tb");
    std::fs::write(&path, file).unwrap();
    let keep = MboxStore::open(MboxConfig::new(&path).with_mozilla_expunged(MozillaExpunged::Keep)).unwrap();
    assert_eq!(read_store(&keep).await.len(), 2);
    let url = MboxStore::open_url(&format!("mbox:{}?mozilla_expunged=keep", path.display())).unwrap();
    assert_eq!(read_store(&url).await.len(), 2);
}

#[tokio::test]
async fn dovecot_pseudo_message_is_skipped() {
    let file = b"From MAILER_DAEMON Wed Oct 27 21:09:58 2004\nDate: 27 Oct 2004 21:09:58 +0300\nFrom: Mail System Internal Data <MAILER-DAEMON@example.org>\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nMessage-ID: <1098900598@example.org>\nX-IMAP: 1096627456 0000000002\nStatus: RO\n\nThis text is part of the internal format of your mail folder, and is not\na real message.\n\nFrom a@b Wed Oct 27 21:10:00 2004\nSubject: real\nX-UID: 1\nStatus: O\n\nhello\n\n";
    let (bodies, metas, warnings) = read(file).await;
    assert_eq!(bodies, [b"Subject: real\nX-UID: 1\n\nhello\n".to_vec()]);
    assert!(!metas[0].flags.seen);
    assert_eq!(kinds(&warnings), [WarningKind::PseudoMessageSkipped]);
}

#[tokio::test]
async fn resume_after_key_and_stale_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = Vec::new();
    for index in 0..5 {
        file.extend_from_slice(
            format!("From a Sat Jan  3 01:05:3{index} 1996\nSubject: {index}\n\nbody {index}\n\n").as_bytes(),
        );
    }
    let store = store_for(dir.path(), &file);
    let inbox = FolderPath::inbox();
    let keys: Vec<SourceKey> =
        store.collect_messages(&inbox).await.unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(keys.len(), 5);
    let after: Vec<SourceKey> =
        store.list_messages(&inbox, Some(&keys[2])).map(|m| m.unwrap().key).collect().await;
    assert_eq!(after, keys[3..]);

    // The file is rewritten: the old key no longer matches, the listing starts over.
    let rewritten = String::from_utf8(file).unwrap().replace("body 2", "BODY 2");
    std::fs::write(store.path(), rewritten).unwrap();
    let after: Vec<SourceKey> =
        store.list_messages(&inbox, Some(&keys[2])).map(|m| m.unwrap().key).collect().await;
    assert_eq!(after.len(), 5);
    assert_ne!(after[2], keys[2]);
    // A stale key is not found; a key past the end or of another shape neither.
    let fetched: Vec<_> = store
        .fetch(&inbox, &[keys[2].clone(), SourceKey::new("999999-000000000000"), SourceKey::new("x")])
        .collect()
        .await;
    assert!(fetched.is_empty());
    assert!(store.fetch_one(&inbox, &keys[3]).await.is_ok());
}

/// One fetch of many keys goes on reading where the previous message ended (the buffer kept);
/// keys out of order, repeated, or with gaps read each message alike, and so does a file that
/// changed between the listing and the fetch.
#[tokio::test]
async fn one_fetch_of_keys_in_any_order_reads_each_message_alike() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = Vec::new();
    for index in 0..40 {
        // Sizes around the reader's 64 KiB buffer, so that messages end inside and past it.
        let body = "x".repeat(index * 4099 % 90_000);
        file.extend_from_slice(
            format!("From a Sat Jan  3 01:05:34 1996\nSubject: {index}\n\n{body}\nFrom the body\n\n")
                .as_bytes(),
        );
    }
    let store = store_for(dir.path(), &file);
    let inbox = FolderPath::inbox();
    let alone = read_store(&store).await;
    let keys: Vec<SourceKey> = alone.iter().map(|(_, meta)| meta.key.clone()).collect();
    assert_eq!(keys.len(), 40);
    let bodies = |fetched: Vec<mailmove_core::Result<mailmove_core::Message>>| -> Vec<Vec<u8>> {
        fetched.into_iter().map(|m| m.unwrap().body.to_bytes().unwrap().to_vec()).collect()
    };
    let in_order = bodies(store.fetch(&inbox, &keys).collect().await);
    assert_eq!(in_order, alone.iter().map(|(body, _)| body.clone()).collect::<Vec<_>>());
    let mut shuffled: Vec<SourceKey> = keys.iter().rev().step_by(3).cloned().collect();
    shuffled.extend(keys.iter().step_by(2).cloned());
    let expected: Vec<Vec<u8>> = shuffled
        .iter()
        .map(|key| alone.iter().find(|(_, meta)| &meta.key == key).unwrap().0.clone())
        .collect();
    assert_eq!(bodies(store.fetch(&inbox, &shuffled).collect().await), expected);
}

#[tokio::test]
async fn spooled_bodies_for_large_messages() {
    let dir = tempfile::tempdir().unwrap();
    let body = "a line of a larger message\n".repeat(10_000);
    let file = format!("From a Sat Jan  3 01:05:34 1996\nSubject: big\n\n{body}\n");
    let path = dir.path().join("big.mbox");
    std::fs::write(&path, file).unwrap();
    let spool = mailmove_core::SpoolConfig { threshold: 4096, dir: Some(dir.path().to_path_buf()) };
    let store = MboxStore::open(MboxConfig::new(&path).with_spool(spool)).unwrap();
    let inbox = FolderPath::inbox();
    let key = store.collect_messages(&inbox).await.unwrap()[0].key.clone();
    let message = store.fetch_one(&inbox, &key).await.unwrap();
    assert!(message.body.is_spooled());
    assert_eq!(message.body.to_bytes().unwrap(), format!("Subject: big\n\n{body}").as_bytes());
}

#[tokio::test]
async fn missing_folder_and_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = MboxStore::open(MboxConfig::new(dir.path().join("nothing-here"))).unwrap();
    assert!(matches!(MailSource::list_folders(&store).await, Err(mailmove_core::Error::NotFound { .. })));
    let items: Vec<_> = store.list_messages(&FolderPath::inbox(), None).collect().await;
    assert!(matches!(items.as_slice(), [Err(mailmove_core::Error::NotFound { .. })]));
}

mod hostile_input {
    use super::*;
    use proptest::prelude::*;

    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"From a Sat Jan  3 01:05:34 1996\n".to_vec()),
            Just(b"From - Mon Jan 01 10:00:00 2024\r\n".to_vec()),
            Just(b"From \n".to_vec()),
            Just(b"Content-Length: 3\n".to_vec()),
            Just(b"Content-Length: 99999999999999999999\n".to_vec()),
            Just(b"Status: RO\n".to_vec()),
            Just(b"X-Mozilla-Status: 0008\n".to_vec()),
            Just(b"X-IMAP: 1\nSubject: FOLDER INTERNAL DATA\n".to_vec()),
            Just(b">>From x\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..40),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn any_file_reads_without_panic_and_fetches_what_it_lists(pieces in proptest::collection::vec(piece(), 0..24)) {
            let bytes: Vec<u8> = pieces.concat();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let store = store_for(dir.path(), &bytes);
            // read_store fetches every listed key and checks fetched metadata == listed metadata.
            let messages = runtime.block_on(read_store(&store));
            for (body, meta) in &messages {
                prop_assert_eq!(body.len() as u64, meta.size);
            }
        }
    }
}
