//! Which `From ` lines separate messages (issue 11, item 10): a line of a separator's form
//! (`From `, sender, date) after a blank line or at the start of the file. Every other line is
//! message text and keeps its bytes; where the boundaries are a guess, the message says so in
//! `MessageMeta::damage`.

use std::path::Path;

use futures::StreamExt;
use mailmove_core::{FolderPath, MailSource, MailSourceExt, MessageMeta, SourceKey};
use mailmove_mbox::{MboxConfig, MboxStore, MboxWarning, WarningKind};
use proptest::prelude::*;

fn store_for(dir: &Path, bytes: &[u8]) -> MboxStore {
    let path = dir.join("box.mbox");
    std::fs::write(&path, bytes).unwrap();
    MboxStore::open(MboxConfig::new(path)).unwrap()
}

/// Every listed message, fetched (the fetched metadata, damage included, equals the listed).
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

struct Read {
    bodies: Vec<Vec<u8>>,
    metas: Vec<MessageMeta>,
    warnings: Vec<MboxWarning>,
}

impl Read {
    fn kinds(&self) -> Vec<WarningKind> {
        self.warnings.iter().map(|w| w.kind).collect()
    }

    fn damage(&self, index: usize) -> Option<&str> {
        self.metas[index].damage.as_deref()
    }
}

async fn read(bytes: &[u8]) -> Read {
    let dir = tempfile::tempdir().unwrap();
    let store = store_for(dir.path(), bytes);
    let (bodies, metas) = read_store(&store).await.into_iter().unzip();
    Read { bodies, metas, warnings: store.warnings() }
}

/// `text` with every `\n` made `\r\n`.
fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

fn offset_of(file: &str, needle: &str) -> usize {
    file.find(needle).unwrap()
}

#[tokio::test]
async fn from_line_without_a_date_is_text_and_keeps_its_bytes() {
    // With a blank line before it and without: never a separator, nothing to report.
    let lf = "From a@b Sat Jan  3 01:05:34 1996\nSubject: one\n\nFrom here on we do it differently.\n\nFrom here on, too.\nFrom\nend\n\nFrom c@d Sat Jan  3 01:05:35 1996\nSubject: two\n\nx\n\n";
    for file in [lf.to_string(), crlf(lf)] {
        let read = read(file.as_bytes()).await;
        let eol = if file.contains('\r') { "\r\n" } else { "\n" };
        let first = "Subject: one\n\nFrom here on we do it differently.\n\nFrom here on, too.\nFrom\nend\n";
        assert_eq!(
            read.bodies,
            [first.replace('\n', eol).into_bytes(), format!("Subject: two{eol}{eol}x{eol}").into_bytes()]
        );
        assert_eq!(read.metas.iter().map(|m| m.damage.clone()).collect::<Vec<_>>(), [None, None]);
        assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    }
}

#[tokio::test]
async fn dated_from_line_after_a_text_line_is_text_and_is_named() {
    let lf = "From a@b Sat Jan  3 01:05:34 1996\nSubject: one\n\nI forwarded this:\nFrom joe@example.org Fri Jul  8 12:08:34 2011\nand it said hi.\n\nFrom c@d Sat Jan  3 01:05:35 1996\nSubject: two\n\nx\n\n";
    for file in [lf.to_string(), crlf(lf)] {
        let read = read(file.as_bytes()).await;
        let eol = if file.contains('\r') { "\r\n" } else { "\n" };
        let first = "Subject: one\n\nI forwarded this:\nFrom joe@example.org Fri Jul  8 12:08:34 2011\nand it said hi.\n";
        assert_eq!(read.bodies[0], first.replace('\n', eol).into_bytes());
        assert_eq!(read.bodies.len(), 2);
        let damage = read.damage(0).unwrap();
        let line = offset_of(&file, "From joe");
        assert!(
            damage.contains(&format!("byte offset {line}")) && damage.contains("no blank line"),
            "{damage}"
        );
        assert_eq!(read.damage(1), None);
        assert_eq!(read.kinds(), [WarningKind::FromLineInBody]);
        assert_eq!(read.warnings[0].key.as_deref(), Some(read.metas[0].key.as_str()));
    }
}

#[tokio::test]
async fn blank_line_and_dated_from_line_split_and_the_second_part_is_named() {
    let lf = "From a@b Sat Jan  3 01:05:34 1996\nSubject: one\n\nfirst half\n\nFrom joe@example.org Fri Jul  8 12:08:34 2011\nsecond half\n\nFrom c@d Sat Jan  3 01:05:35 1996\nSubject: two\n\nx\n\n";
    // LF, CRLF, and a CRLF blank line before an LF From line (after an LF line the blank
    // line's `\r` stays with the message, as always).
    let mixed = lf.replace("first half\n\n", "first half\n\r\n");
    for (file, first) in [
        (lf.to_string(), "Subject: one\n\nfirst half\n".to_string()),
        (crlf(lf), crlf("Subject: one\n\nfirst half\n")),
        (mixed, "Subject: one\n\nfirst half\n\r".to_string()),
    ] {
        let read = read(file.as_bytes()).await;
        let eol = if file.contains("half\r\n") { "\r\n" } else { "\n" };
        assert_eq!(read.bodies.len(), 3, "{file:?}");
        assert_eq!(read.bodies[0], first.as_bytes());
        assert_eq!(read.bodies[1], format!("second half{eol}").into_bytes());
        assert_eq!(read.damage(0), None);
        let damage = read.damage(1).unwrap();
        let split = offset_of(&file, "From joe");
        assert!(
            damage.contains(&format!("byte offset {split}"))
                && damage.contains("second half of the previous message"),
            "{damage}"
        );
        assert_eq!(read.damage(2), None);
        // The split line is the second part's separator: its date is the internal date.
        assert_eq!(read.metas[1].internal_date.unwrap().timestamp(), 1_310_126_914);
        assert_eq!(read.kinds(), [WarningKind::SplitByFromLine]);
    }
}

#[tokio::test]
async fn start_of_file_rule() {
    // A separator at the very start needs no blank line before it.
    let read_one = read(b"From a@b Sat Jan  3 01:05:34 1996\nSubject: s\n\nx\n\n").await;
    assert_eq!(read_one.bodies, [b"Subject: s\n\nx\n".to_vec()]);
    assert!(read_one.warnings.is_empty());

    // A first line without a date is no separator; and a dated line right after it has no blank
    // line before it: all of it is junk before the first separator, kept byte for byte.
    let file = b"From here on, a note.\nFrom a@b Sat Jan  3 01:05:34 1996\nSubject: s\n\nx\n\n";
    let junk = read(file).await;
    assert_eq!(junk.bodies, [file[..file.len() - 1].to_vec()]);
    assert!(junk.damage(0).unwrap().contains("before the first separator"));
    for kind in [WarningKind::BadFromLine, WarningKind::FromLineInBody, WarningKind::JunkBeforeFirstFrom] {
        assert!(junk.kinds().contains(&kind), "{:?}", junk.kinds());
    }

    // With a blank line in between, the dated line is the first separator.
    let file = b"From here on, a note.\n\nFrom a@b Sat Jan  3 01:05:34 1996\nSubject: s\n\nx\n\n";
    let split = read(file).await;
    assert_eq!(split.bodies, [b"From here on, a note.\n".to_vec(), b"Subject: s\n\nx\n".to_vec()]);
    assert!(split.damage(0).is_some());
    assert_eq!(split.damage(1), None);

    // Blank lines only before the first separator: skipped, CRLF ones too.
    let skipped = read(b"\r\n\r\nFrom a@b Sat Jan  3 01:05:34 1996\r\nSubject: s\r\n\r\nx\r\n\r\n").await;
    assert_eq!(skipped.bodies, [b"Subject: s\r\n\r\nx\r\n".to_vec()]);
    assert_eq!(skipped.damage(0), None);
    assert_eq!(skipped.kinds(), [WarningKind::LeadingBlankLinesSkipped]);
}

/// One file with every shape: resuming after any key and fetching by key agree with the listing.
#[tokio::test]
async fn resume_and_fetch_agree_on_boundaries_and_damage() {
    let file = "From here on, junk.\n\nFrom a@b Sat Jan  3 01:05:34 1996\nSubject: 1\n\ntext\nFrom joe@example.org Fri Jul  8 12:08:34 2011\n\nFrom b@c Sat Jan  3 01:05:35 1996\nSubject: 2\n\nhalf\n\nFrom joe@example.org Fri Jul  8 12:08:34 2011\nother half\n\nFrom here on\n\nFrom d@e Sat Jan  3 01:05:36 1996\nSubject: 3\n\nend";
    let dir = tempfile::tempdir().unwrap();
    let store = store_for(dir.path(), file.as_bytes());
    let messages = read_store(&store).await;
    let damaged: Vec<bool> = messages.iter().map(|(_, meta)| meta.damage.is_some()).collect();
    // Junk; a dated line after text; clean; the split-off half; the last, cut mid-line.
    assert_eq!(damaged, [true, true, false, true, true]);
    assert_eq!(messages[3].0, b"other half\n\nFrom here on\n");
    let inbox = FolderPath::inbox();
    let keys: Vec<SourceKey> = messages.iter().map(|(_, meta)| meta.key.clone()).collect();
    for (index, key) in keys.iter().enumerate() {
        let after: Vec<MessageMeta> =
            store.list_messages(&inbox, Some(key)).map(|m| m.unwrap()).collect().await;
        let expected: Vec<MessageMeta> = messages[index + 1..].iter().map(|(_, meta)| meta.clone()).collect();
        assert_eq!(after, expected, "after key {index}");
    }
}

/// The rule, written independently: the offsets of the lines that separate messages.
fn separator_offsets(file: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut start = 0;
    let mut previous_blank = false;
    while start < file.len() {
        let end = file[start..].iter().position(|b| *b == b'\n').map_or(file.len(), |i| start + i + 1);
        let line = &file[start..end];
        if (start == 0 || previous_blank)
            && line.starts_with(b"From ")
            && line.windows(4).any(|w| w == b"1996")
        {
            offsets.push(start);
        }
        previous_blank = line == b"\n" || line == b"\r\n";
        start = end;
    }
    offsets
}

fn piece() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![
        Just(&b"From here on we\n"[..]),
        Just(&b"From joe Sat Jan  3 01:05:34 1996\n"[..]),
        Just(&b"From joe Sat Jan  3 01:05:34 1996\r\n"[..]),
        Just(&b"From joe Sat Jan  3 01:05:34"[..]),
        Just(&b"\n"[..]),
        Just(&b"\r\n"[..]),
        Just(&b"\r"[..]),
        Just(&b"Subject: s\n"[..]),
        Just(&b"text"[..]),
        Just(&b"text\n"[..]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    /// Messages start exactly at the separators the rule names, and each message is its region
    /// without its `From ` line and without one final line ending: no other byte goes.
    #[test]
    fn separators_follow_the_rule_and_no_line_is_dropped(pieces in proptest::collection::vec(piece(), 0..40)) {
        let file = [&b"From a Sat Jan  3 01:05:34 1996\n"[..], &pieces.concat()].concat();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = store_for(dir.path(), &file);
        let messages = runtime.block_on(read_store(&store));
        let offsets: Vec<usize> = messages
            .iter()
            .map(|(_, meta)| meta.key.as_str().split_once('-').unwrap().0.parse().unwrap())
            .collect();
        prop_assert_eq!(&offsets, &separator_offsets(&file));
        for (index, (body, _)) in messages.iter().enumerate() {
            let region = &file[offsets[index]..offsets.get(index + 1).copied().unwrap_or(file.len())];
            let from_line = region.iter().position(|b| *b == b'\n').map_or(region.len(), |i| i + 1);
            let rest = &region[from_line..];
            prop_assert!(rest.starts_with(body), "{:?} is not the start of {:?}", body, rest);
            let removed = &rest[body.len()..];
            prop_assert!(removed.is_empty() || removed == b"\n" || removed == b"\r\n", "removed {:?}", removed);
        }
    }
}
