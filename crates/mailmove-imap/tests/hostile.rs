//! A hostile or broken IMAP server against the real engine: folder names no path can keep apart,
//! names with CR/LF/NUL or of 50 MB, 100,000 folders, a slow-loris greeting and FETCH, a body
//! larger than announced, an absurd literal, a UID answered twice with two bodies, a FETCH that
//! answers another UID or ends before its data, BYE after a whole message, garbage between
//! responses, a per-entry LIST delimiter, and a destination whose names ignore case.
//!
//! Each test fails on the code before issue 11's fixes: a silent loss, a hang (bounded here by
//! [`NOT_HUNG`], which only turns a hang into a failure: no test measures speed), a wrong cause,
//! or a whole run stopped by one bad folder.
mod common;

use std::time::Duration;

use common::fake::{Chunk, Fake};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{self, CopyOptions, EventSink, RetryPolicy, RunOutcome, RunReport};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Error, FolderPath, MailSink, MailSource, Secret, SourceKey};
use mailmove_imap::{ImapConfig, ImapStore};

/// Longer than any of these tests takes when the client is right; a hang fails instead of
/// holding CI until its limit.
const NOT_HUNG: Duration = Duration::from_secs(60);

fn options() -> CopyOptions {
    CopyOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(10),
        },
        ..CopyOptions::default()
    }
}

async fn connect(url: &str) -> Result<ImapStore, Error> {
    let config = ImapConfig::from_url(url).unwrap().with_password(Secret::new("pw"));
    ImapStore::connect(config).await
}

async fn copy(source: &dyn MailSource, sink: &dyn MailSink) -> RunReport {
    let checkpoint = Checkpoint::in_memory(&source.identity(), &sink.identity()).unwrap();
    let (options, events) = (options(), EventSink::none());
    let run = engine::copy(source, sink, &options, &checkpoint, &events);
    tokio::time::timeout(NOT_HUNG, run).await.expect("the run hung").unwrap()
}

fn message(n: usize) -> Vec<u8> {
    format!("From: a@example.org\r\nMessage-ID: <m{n}@example.org>\r\nSubject: {n}\r\n\r\nbody {n}\r\n")
        .into_bytes()
}

/// `* LIST () "/" NAME` lines for these raw names (as literals, so any byte can travel).
fn list_lines(tag: &str, names: &[&[u8]]) -> Vec<Chunk> {
    let mut out = Vec::new();
    for name in names {
        let mut line = format!("* LIST () \"/\" {{{}}}\r\n", name.len()).into_bytes();
        line.extend_from_slice(name);
        line.extend_from_slice(b"\r\n");
        out.push(Chunk::Bytes(line));
    }
    out.push(Chunk::text(format!("{tag} OK done\r\n")));
    out
}

fn failed_folders(report: &RunReport) -> Vec<String> {
    let mut out: Vec<String> =
        report.failures.iter().filter(|f| f.kind == "unusable_folder").map(|f| f.folder.clone()).collect();
    out.sort();
    out
}

#[tokio::test]
async fn folders_with_empty_levels_stay_distinct_and_are_named_never_merged() {
    let fake = Fake::start(&[]).await;
    let names: [&[u8]; 5] = [b"INBOX", b"a/b", b"a//b", b"/a/b", b"a/b/"];
    fake.with(|state| {
        for name in &names[1..] {
            state.add(std::str::from_utf8(name).unwrap(), &[message(names.len())]);
        }
        state.hook = Some(Box::new(move |tag, command, args| {
            (command == "LIST" && args.contains('*')).then(|| list_lines(tag, &names))
        }));
    });
    let source = connect(&fake.url("")).await.unwrap();
    let sink = MemoryStore::new("dst");
    let report = copy(&source, &sink).await;
    assert_eq!(report.outcome, RunOutcome::CompletedWithFailures, "{report:#?}");
    assert_eq!(report.copied, 1, "only a/b can be copied: {report:#?}");
    assert_eq!(sink.contents(&FolderPath::parse("a/b")).len(), 1);
    assert_eq!(failed_folders(&report), ["/a/b", "a//b", "a/b/"]);

    // Verification sees them too: never identical while they exist.
    let verify = mailmove_verify::Verifier::new(&source, &sink).run().await.unwrap();
    assert!(!verify.identical);
    assert_eq!(verify.unreadable.len(), 3, "{:#?}", verify.unreadable);
}

#[tokio::test]
async fn a_folder_name_with_cr_lf_or_nul_fails_that_folder_only() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.add("INBOX", &[message(1), message(2)]);
        state.add("Good", &[message(3)]);
        state.hook = Some(Box::new(|tag, command, args| {
            let names: [&[u8]; 4] = [b"INBOX", b"Good", b"bad\r\nname", b"nul\0name"];
            (command == "LIST" && args.contains('*')).then(|| list_lines(tag, &names))
        }));
    });
    let source = connect(&fake.url("")).await.unwrap();
    let sink = MemoryStore::new("dst");
    let report = copy(&source, &sink).await;
    assert_eq!(report.copied, 3, "{report:#?}");
    assert_eq!(report.outcome, RunOutcome::CompletedWithFailures);
    assert_eq!(failed_folders(&report), ["bad\r\nname", "nul\0name"]);
}

#[tokio::test]
async fn a_mailbox_name_of_50_mb_is_named_not_dropped() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.add("INBOX", &[message(1)]);
        state.hook = Some(Box::new(|tag, command, args| {
            if !(command == "LIST" && args.contains('*')) {
                return None;
            }
            let mut huge = b"* LIST () \"/\" {50000000}\r\n".to_vec();
            huge.resize(huge.len() + 50_000_000, b'x');
            huge.extend_from_slice(b"\r\n");
            let mut chunks = vec![Chunk::text("* LIST () \"/\" INBOX\r\n"), Chunk::Bytes(huge)];
            chunks.push(Chunk::text(format!("{tag} OK done\r\n")));
            Some(chunks)
        }));
    });
    let source = connect(&fake.url("")).await.unwrap();
    let sink = MemoryStore::new("dst");
    let report = copy(&source, &sink).await;
    assert_eq!(report.copied, 1);
    assert_eq!(failed_folders(&report), ["<a name of 50000000 bytes>"]);
}

#[tokio::test]
async fn the_delimiter_of_each_list_entry_splits_its_name() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.add("Archive.2019", &[message(1)]);
        state.hook = Some(Box::new(|tag, command, args| {
            (command == "LIST" && args.contains('*')).then(|| {
                vec![
                    Chunk::text("* LIST () \"/\" INBOX\r\n* LIST () \".\" \"Archive.2019\"\r\n"),
                    Chunk::text(format!("{tag} OK done\r\n")),
                ]
            })
        }));
    });
    let source = connect(&fake.url("")).await.unwrap();
    let folders = MailSource::list_folders(&source).await.unwrap();
    assert!(folders.iter().any(|f| f.path == FolderPath::parse("Archive/2019")), "{folders:#?}");
    let sink = MemoryStore::new("dst");
    let report = copy(&source, &sink).await;
    assert_eq!(report.copied, 1, "{report:#?}");
    assert_eq!(sink.contents(&FolderPath::parse("Archive/2019")).len(), 1);
}

#[tokio::test]
async fn a_hundred_thousand_folders_list_and_plan() {
    const FOLDERS: usize = 100_000;
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        for n in 0..FOLDERS {
            state.add(&format!("f{n:06}"), &[]);
        }
    });
    let source = connect(&fake.url("&timeout=60")).await.unwrap();
    let listing =
        tokio::time::timeout(NOT_HUNG, MailSource::list_folders(&source)).await.expect("LIST hung").unwrap();
    assert_eq!(listing.len(), FOLDERS + 1);
    // Mapping and planning over all of them; one folder selected, so the run itself is short.
    let mut options = options();
    options.filter.include = vec!["f000042".into()];
    let sink = MemoryStore::new("dst");
    let checkpoint = Checkpoint::in_memory("src", "dst").unwrap();
    let events = EventSink::none();
    let run = engine::copy(&source, &sink, &options, &checkpoint, &events);
    let report = tokio::time::timeout(NOT_HUNG, run).await.expect("planning hung").unwrap();
    assert_eq!(report.folders.len(), 1, "{:?}", report.folders);
    assert_eq!(report.outcome, RunOutcome::Complete);
}

#[tokio::test]
async fn a_slow_loris_greeting_times_out() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.greeting = Some(vec![Chunk::Trickle(
            b"* OK fake ready after a long while\r\n".to_vec(),
            Duration::from_millis(300),
        )]);
    });
    // Every byte arrives well within the 1 s read limit; the response as a whole does not.
    let url = fake.url("&timeout=1&min_rate=100");
    let connecting = connect(&url);
    let result = tokio::time::timeout(NOT_HUNG, connecting).await.expect("the greeting hung the client");
    let error = result.expect_err("a greeting of one byte every 300 ms must time out");
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(error.to_string().contains("too slowly"), "{error}");
}

#[tokio::test]
async fn a_slow_loris_fetch_times_out_and_fails_the_message() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.add("INBOX", &[message(1)]);
        state.hook = Some(Box::new(|tag, command, args| {
            (command == "UID FETCH" && args.contains("BODY.PEEK[]")).then(|| {
                let body = message(1);
                let head = format!("* 1 FETCH (UID 1 RFC822.SIZE {0} BODY[] {{{0}}}\r\n", body.len());
                let mut rest = body;
                rest.extend_from_slice(format!(")\r\n{tag} OK done\r\n").as_bytes());
                vec![Chunk::text(head), Chunk::Trickle(rest, Duration::from_millis(300))]
            })
        }));
    });
    let source = connect(&fake.url("&timeout=1&min_rate=100")).await.unwrap();
    let sink = MemoryStore::new("dst");
    let report = copy(&source, &sink).await;
    assert_eq!(report.copied, 0);
    assert_eq!(report.failures.len(), 1, "{report:#?}");
    assert_eq!(report.failures[0].kind, "timeout", "{:#?}", report.failures);
}

#[tokio::test]
async fn a_body_larger_than_announced_is_not_read_and_is_named() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.add("INBOX", &[message(1), message(2)]);
        state.hook = Some(Box::new(|tag, command, args| {
            if !(command == "UID FETCH" && args.contains("BODY.PEEK[]") && args.starts_with('1')) {
                return None;
            }
            // 127 bytes announced, 300 MB coming: the client must stop at the literal's header.
            let mut chunks = vec![Chunk::text("* 1 FETCH (UID 1 RFC822.SIZE 127 BODY[] {300000000}\r\n")];
            chunks.push(Chunk::Bytes(vec![b'x'; 1 << 20]));
            chunks.push(Chunk::Trickle(vec![b'x'; 1000], Duration::from_millis(100)));
            chunks.push(Chunk::text(format!(")\r\n{tag} OK done\r\n")));
            Some(chunks)
        }));
    });
    let source = connect(&fake.url("")).await.unwrap();
    let sink = MemoryStore::new("dst");
    let report = copy(&source, &sink).await;
    assert_eq!(report.copied, 1, "{report:#?}");
    let failure = report.failures.iter().find(|f| f.source_key == "1").expect("UID 1 named");
    assert_eq!(failure.kind, "corrupt");
    assert!(failure.reason.contains("127") && failure.reason.contains("300000000"), "{}", failure.reason);
    assert!(!failure.transient);
}

#[tokio::test]
async fn an_absurd_literal_is_refused_up_front_without_retries() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.add("INBOX", &[message(1)]);
        state.hook = Some(Box::new(|_tag, command, args| {
            (command == "UID FETCH" && args.contains("BODY.PEEK[]"))
                .then(|| vec![Chunk::text("* 1 FETCH (UID 1 BODY[] {999999999999}\r\n"), Chunk::text("x")])
        }));
    });
    let source = connect(&fake.url("")).await.unwrap();
    let sink = MemoryStore::new("dst");
    let report = copy(&source, &sink).await;
    assert_eq!(report.failures.len(), 1, "{report:#?}");
    assert_eq!(report.failures[0].kind, "corrupt");
    assert!(!report.failures[0].transient);
    let fetches = fake.with(|state| state.commands.iter().filter(|c| c.contains("BODY.PEEK[]")).count());
    assert!(fetches <= 2, "a refused literal is not fetched again and again: {fetches} FETCHes");
}

#[tokio::test]
async fn one_uid_with_two_different_bodies_is_reported() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.add("INBOX", &[message(1)]);
        state.hook = Some(Box::new(|tag, command, args| {
            (command == "UID FETCH" && args.contains("BODY.PEEK[]")).then(|| {
                let (first, second) = (message(1), message(99));
                vec![
                    Chunk::text(format!("* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", first.len())),
                    Chunk::Bytes(first),
                    Chunk::text(format!(")\r\n* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", second.len())),
                    Chunk::Bytes(second),
                    Chunk::text(format!(")\r\n{tag} OK done\r\n")),
                ]
            })
        }));
    });
    let source = connect(&fake.url("")).await.unwrap();
    let sink = MemoryStore::new("dst");
    let report = copy(&source, &sink).await;
    assert_eq!(report.copied, 0, "neither body can be trusted: {report:#?}");
    assert!(report.failures[0].reason.contains("two different bodies"), "{:#?}", report.failures);
    assert!(report.warnings.iter().any(|w| w.contains("two different bodies")), "{:#?}", report.warnings);
}

#[tokio::test]
async fn a_fetch_answering_another_uid_is_a_protocol_error_not_a_vanished_message() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.add("INBOX", &[message(1), message(2)]);
        state.hook = Some(Box::new(|tag, command, args| {
            (command == "UID FETCH" && args.contains("BODY.PEEK[]") && args.starts_with("1 ")).then(|| {
                let other = message(2);
                vec![
                    Chunk::text(format!("* 2 FETCH (UID 2 BODY[] {{{}}}\r\n", other.len())),
                    Chunk::Bytes(other),
                    Chunk::text(format!(")\r\n{tag} OK done\r\n")),
                ]
            })
        }));
    });
    let source = connect(&fake.url("")).await.unwrap();
    let keys = [SourceKey::new("1")];
    let items: Vec<_> = futures::StreamExt::collect(source.fetch(&FolderPath::inbox(), &keys)).await;
    let error = items.into_iter().find_map(Result::err).expect("UID 1 is not delivered");
    assert!(matches!(error, Error::Protocol { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("did not include UID 1") && text.contains("[2]"), "{text}");
}

#[tokio::test]
async fn a_tagged_ok_before_the_data_is_a_protocol_error() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.add("INBOX", &[message(1)]);
        state.hook = Some(Box::new(|tag, command, args| {
            (command == "UID FETCH" && args.contains("BODY.PEEK[]")).then(|| {
                let body = message(1);
                vec![
                    Chunk::text(format!("{tag} OK done\r\n* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", body.len())),
                    Chunk::Bytes(body),
                    Chunk::text(")\r\n"),
                ]
            })
        }));
    });
    let source = connect(&fake.url("")).await.unwrap();
    let sink = MemoryStore::new("dst");
    let report = copy(&source, &sink).await;
    assert_eq!(report.failures.len(), 1, "{report:#?}");
    assert_eq!(report.failures[0].kind, "protocol", "{:#?}", report.failures);
    assert!(!report.failures[0].reason.contains("vanished"), "{:#?}", report.failures);
}

#[tokio::test]
async fn a_message_received_whole_before_bye_is_kept() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.add("INBOX", &[message(1), message(2)]);
        let mut first = true;
        state.hook = Some(Box::new(move |_tag, command, args| {
            if !(command == "UID FETCH" && args.contains("BODY.PEEK[]") && std::mem::take(&mut first)) {
                return None;
            }
            let body = message(1);
            Some(vec![
                Chunk::text(format!("* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", body.len())),
                Chunk::Bytes(body),
                Chunk::text(")\r\n* BYE going away\r\n"),
                Chunk::Close,
            ])
        }));
    });
    let source = connect(&fake.url("")).await.unwrap();
    let sink = MemoryStore::new("dst");
    let report = copy(&source, &sink).await;
    assert_eq!(report.copied, 2, "{report:#?}");
    assert!(report.failures.is_empty());
    let body_fetches: Vec<String> =
        fake.with(|state| state.commands.iter().filter(|c| c.contains("BODY.PEEK[]")).cloned().collect());
    assert_eq!(body_fetches.len(), 2, "{body_fetches:?}");
    assert!(body_fetches[1].starts_with("UID FETCH 2 "), "only UID 2 is fetched again: {body_fetches:?}");
}

#[tokio::test]
async fn garbage_between_responses_is_reported() {
    let fake = Fake::start(&[]).await;
    fake.with(|state| {
        state.add("INBOX", &[message(1)]);
        state.hook = Some(Box::new(|tag, command, _args| {
            (command == "NOOP")
                .then(|| vec![Chunk::text(format!("%%% not imap at all\r\n{tag} OK done\r\n"))])
        }));
    });
    let source = connect(&fake.url("")).await.unwrap();
    let sink = MemoryStore::new("dst");
    let checkpoint = Checkpoint::in_memory("src", "dst").unwrap();
    // Two runs: the second reuses a selected connection, which sends the NOOP.
    for _ in 0..2 {
        engine::copy(&source, &sink, &options(), &checkpoint, &EventSink::none()).await.unwrap();
    }
    let fetched: Vec<_> =
        futures::StreamExt::collect(source.fetch(&FolderPath::inbox(), &[SourceKey::new("1")])).await;
    assert!(fetched[0].is_ok());
    let fetched: Vec<_> =
        futures::StreamExt::collect(source.fetch(&FolderPath::inbox(), &[SourceKey::new("1")])).await;
    assert!(fetched[0].is_ok());
    let warnings = source.warnings();
    assert!(warnings.iter().any(|w| w.contains("not IMAP") && w.contains("%%%")), "{warnings:#?}");
}

#[tokio::test]
async fn folders_that_differ_only_in_case_do_not_merge_on_a_case_insensitive_destination() {
    let fake = Fake::start(&["UIDPLUS", "LITERAL+"]).await;
    fake.with(|state| state.case_insensitive = true);
    let source = MemoryStore::new("src");
    for (folder, n) in [("Work", 1), ("work", 2)] {
        let folder = FolderPath::parse(folder);
        source.create(&folder, None);
        source.insert(&folder, message(n), Default::default(), None);
    }
    let sink = connect(&fake.url("")).await.unwrap();
    let report = copy(&source, &sink).await;
    assert_eq!(report.copied, 1, "{report:#?}");
    assert_eq!(report.outcome, RunOutcome::CompletedWithFailures);
    let failure = &report.failures[0];
    assert_eq!(failure.kind, "invalid_folder_name", "{failure:#?}");
    assert!(failure.reason.contains("ignores case"), "{}", failure.reason);
    assert_eq!(fake.with(|state| state.mailboxes.len()), 2, "INBOX and one of the two");
}

#[tokio::test]
async fn lf_and_lone_cr_are_sent_as_crlf_and_a_rerun_recognises_the_copies() {
    // What strict servers require (Cyrus refuses "bare newlines"); the copies stay the same
    // messages to the engine, so a second run (without the checkpoint) appends nothing.
    let fake = Fake::start(&["UIDPLUS", "LITERAL+"]).await;
    let source = MemoryStore::new("src");
    let bodies: [&[u8]; 3] = [
        b"From: a@example.org\nSubject: lf\n\nbody\n",
        b"From: a@example.org\r\nSubject: cr\r\n\r\nbody\rmore\r",
        b"From: a@example.org\r\nSubject: crlf\r\n\r\nbody\r\n",
    ];
    for body in bodies {
        source.insert(&FolderPath::inbox(), body.to_vec(), Default::default(), None);
    }
    let sink = connect(&fake.url("")).await.unwrap();
    assert_eq!(copy(&source, &sink).await.copied, 3);
    let stored: Vec<Vec<u8>> =
        fake.with(|state| state.mailboxes["INBOX"].messages.iter().map(|m| m.body.clone()).collect());
    let expected: [&[u8]; 3] = [
        b"From: a@example.org\r\nSubject: lf\r\n\r\nbody\r\n",
        b"From: a@example.org\r\nSubject: cr\r\n\r\nbody\r\nmore\r\n",
        b"From: a@example.org\r\nSubject: crlf\r\n\r\nbody\r\n",
    ];
    assert_eq!(stored, expected.map(<[u8]>::to_vec));
    let again = copy(&source, &sink).await;
    assert_eq!((again.copied, again.skipped), (0, 3), "{again:#?}");
}
