//! Into Microsoft 365 as it is (issue 15), against a scripted server that behaves like Exchange
//! Online's IMAP (imapsync's FAQ.Office365.txt and FAQ.Exchange.txt, ../shared/PROVIDERS.md):
//! "Files" refused at CREATE ("NO Folder name is reserved"), names compared without case,
//! "Request is throttled. Suggested Backoff Time: N milliseconds", `\Flagged` forgotten at APPEND.
//!
//! The preflight names the reserved folder and the case twins before anything is written; the
//! copy, mapped around them, waits out the throttling, sets `\Flagged` again where the server
//! forgot it, and a re-run copies nothing.

mod common;

use std::time::Duration;

use common::fake::{Action, Fake};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{
    self, CopyOptions, EventSink, FolderMapping, PreflightOptions, RetryPolicy, RunOutcome,
};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Flags, FolderPath, MailSink, Provider, Secret};
use mailmove_imap::{ImapConfig, ImapStore};

fn message(name: &str) -> Vec<u8> {
    format!("From: a@example.com\r\nMessage-ID: <{name}@example.com>\r\nSubject: {name}\r\n\r\n{name}\r\n")
        .into_bytes()
}

/// INBOX (one message starred), Files, Projects and projects.
fn source() -> MemoryStore {
    let source = MemoryStore::new("old");
    let flagged = Flags::from_imap_list(["\\Seen", "\\Flagged"]);
    for (folder, name, flags) in [
        // A read receipt was sent: Exchange would show `$MDNSent` as a category.
        ("INBOX", "a", Flags::from_imap_list(["\\Seen", "$MDNSent"])),
        ("INBOX", "starred", flagged),
        ("Files", "attachment-note", Flags::empty()),
        ("Projects", "p1", Flags::empty()),
        ("projects", "p2", Flags::empty()),
    ] {
        source.insert(&FolderPath::parse(folder), message(name), flags, None);
    }
    source
}

async fn microsoft_365() -> Fake {
    let fake = Fake::start(&["LITERAL+", "UIDPLUS"]).await;
    fake.with(|state| {
        state.case_insensitive = true;
        state.forget_at_append = vec!["\\Flagged".into()];
        state.hook = Some(Box::new(|tag, command, args| {
            (command == "CREATE" && args.trim_matches('"').eq_ignore_ascii_case("Files"))
                .then(|| vec![common::fake::Chunk::text(format!("{tag} NO Folder name is reserved\r\n"))])
        }));
        // The second APPEND is throttled once, with Microsoft's hint.
        state.script = Box::new(|n, _| match n {
            1 => Action::Answer("NO Request is throttled. Suggested Backoff Time: 50 milliseconds".into()),
            _ => Action::Store,
        });
    });
    fake
}

fn options(mapping: FolderMapping) -> CopyOptions {
    // One folder at a time: which of the case twins is created first is then known.
    let limits = engine::Limits { folder_concurrency: 1, ..Default::default() };
    CopyOptions {
        mapping,
        limits,
        left_out_keywords: Provider::Microsoft365.keywords_left_out().iter().map(|k| k.to_string()).collect(),
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
        },
        ..CopyOptions::default()
    }
}

#[tokio::test]
async fn into_microsoft_365_around_its_reserved_names_its_throttling_and_its_forgotten_flags() {
    let (source, fake) = (source(), microsoft_365().await);
    let config = ImapConfig::from_url(&fake.url("")).unwrap().with_password(Secret::new("pw"));
    let sink = ImapStore::connect(config).await.unwrap();
    let checkpoint = Checkpoint::in_memory("old", &MailSink::identity(&sink)).unwrap();

    // The preflight: "Files" is reserved, "Projects" and "projects" are one folder there.
    let wanted = PreflightOptions::default().with_destination(Some(Provider::Microsoft365));
    let found = engine::preflight(&source, &sink, &options(FolderMapping::default()), &checkpoint, &wanted)
        .await
        .unwrap();
    assert_eq!(found.problems.len(), 2, "{:#?}", found.problems);
    assert!(found.problems[0].contains("a name microsoft365 refuses"), "{:#?}", found.problems);
    assert!(found.problems[1].contains("one folder on microsoft365"), "{:#?}", found.problems);
    assert!(
        fake.with(|state| !state.commands.iter().any(|c| c.starts_with("APPEND") || c.starts_with("CREATE")))
    );

    // Unmapped, the copy is refused the folder, does not merge the twins, and says both; the
    // throttled APPEND waited and went again.
    let first =
        engine::copy(&source, &sink, &options(FolderMapping::default()), &checkpoint, &EventSink::none())
            .await
            .unwrap();
    let failed: Vec<(&str, &str)> =
        first.failures.iter().map(|f| (f.folder.as_str(), f.kind.as_str())).collect();
    assert_eq!(failed, [("Files", "backend"), ("projects", "invalid_folder_name")], "{:#?}", first.failures);
    assert!(first.failures[0].reason.contains("Folder name is reserved"), "{:#?}", first.failures);
    assert_eq!(first.copied, 3, "{first:#?}");
    assert_eq!(fake.with(|state| state.appends), 4, "3 messages, one of them sent twice (throttled once)");

    // Mapped around both, it completes.
    let mapping = FolderMapping::default()
        .with_rule("Files=Files (old)")
        .unwrap()
        .with_rule("projects=Projects (lower)")
        .unwrap();
    let report = engine::copy(&source, &sink, &options(mapping.clone()), &checkpoint, &EventSink::none())
        .await
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Complete, "{:#?}", report.failures);
    assert_eq!((report.copied, report.failed), (2, 0), "{report:#?}");
    let stored = fake.with(|state| {
        state
            .mailboxes
            .iter()
            .flat_map(|(name, mailbox)| mailbox.messages.iter().map(move |m| (name.clone(), m.flags.clone())))
            .collect::<Vec<_>>()
    });
    assert_eq!(stored.len(), 5, "{stored:?}");
    let starred: Vec<&String> =
        stored.iter().filter(|(_, flags)| flags.contains("\\Flagged")).map(|(name, _)| name).collect();
    assert_eq!(starred, ["INBOX"], "the forgotten \\Flagged was set again: {stored:?}");
    assert!(stored.iter().all(|(_, flags)| !flags.contains("$MDNSent")), "{stored:?}");
    assert!(
        first.warnings.iter().any(|w| w.starts_with("1 messages were copied without the keywords $MDNSent")),
        "{:?}",
        first.warnings
    );
    // Verification with the copy's options: identical (the keyword left out is not compared).
    let verified = mailmove_verify::Verifier::new(&source, &sink)
        .options(mailmove_verify::VerifyOptions::from_copy(&options(mapping.clone())))
        .run()
        .await
        .unwrap();
    assert!(verified.identical, "{verified:#?}");
    let folders: Vec<String> = fake.with(|state| state.mailboxes.keys().cloned().collect());
    assert_eq!(folders, ["Files (old)", "INBOX", "Projects", "Projects (lower)"]);

    let again =
        engine::copy(&source, &sink, &options(mapping), &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!((again.copied, again.failed), (0, 0), "{again:#?}");
}

/// Whether `body` has a line longer than Exchange takes.
fn too_long_for_exchange(body: &[u8]) -> bool {
    body.split(|byte| *byte == b'\n').any(|line| line.len() > 9_902)
}

#[tokio::test]
async fn long_lines_are_refused_as_they_are_and_go_re_encoded_when_asked() {
    let source = MemoryStore::new("old");
    let inbox = FolderPath::inbox();
    let html = format!(
        "From: a@example.com\r\nMessage-ID: <html@example.com>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{}</p>\r\n",
        "caf\u{e9} ".repeat(3_000)
    );
    let long_subject = format!(
        "From: a@example.com\r\nMessage-ID: <subject@example.com>\r\nSubject: {}\r\n\r\nbody\r\n",
        "s".repeat(12_000)
    );
    for body in [message("short"), html.clone().into_bytes(), long_subject.into_bytes()] {
        source.insert(&inbox, body, Flags::empty(), None);
    }
    let fake = Fake::start(&["LITERAL+", "UIDPLUS"]).await;
    fake.with(|state| {
        // "BAD Command Argument Error 11" for a line over the limit (imapsync's FAQ.Exchange.txt).
        state.script = Box::new(|_, body| match too_long_for_exchange(body) {
            true => Action::Answer("BAD Command Argument Error 11".into()),
            false => Action::Store,
        })
    });
    let config = ImapConfig::from_url(&fake.url("")).unwrap().with_password(Secret::new("pw"));
    let sink = ImapStore::connect(config).await.unwrap();

    // As they are: both long-line messages are refused, named.
    let plain = Checkpoint::in_memory("old", &MailSink::identity(&sink)).unwrap();
    let report = engine::copy(&source, &sink, &options(FolderMapping::default()), &plain, &EventSink::none())
        .await
        .unwrap();
    assert_eq!((report.copied, report.failed), (1, 2), "{report:#?}");

    // Asked to, the HTML part goes re-encoded (named); the long header line cannot be shortened
    // and is still refused.
    let checkpoint = Checkpoint::in_memory("old", &MailSink::identity(&sink)).unwrap();
    let encoding = CopyOptions {
        encode_long_lines: Provider::Microsoft365.max_line_length(),
        ..options(FolderMapping::default())
    };
    let report = engine::copy(&source, &sink, &encoding, &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!((report.copied, report.failed, report.transformed.len()), (1, 1, 1), "{report:#?}");
    assert!(
        report.transformed[0].reason.starts_with("long-lines-encoded: parts with long lines"),
        "{report:#?}"
    );
    assert!(report.failures[0].reason.contains("Command Argument Error 11"), "{report:#?}");
    let stored = fake.with(|state| state.mailboxes["INBOX"].messages.last().unwrap().body.clone());
    assert!(String::from_utf8_lossy(&stored).contains("Content-Transfer-Encoding: quoted-printable"));
    assert!(!too_long_for_exchange(&stored));

    // Verification with the same option knows the copy: transformed, not changed; the refused
    // message is the one difference.
    let verified = mailmove_verify::Verifier::new(&source, &sink)
        .options(mailmove_verify::VerifyOptions::from_copy(&encoding))
        .run()
        .await
        .unwrap();
    assert_eq!(
        (verified.counts.transformed, verified.counts.changed, verified.counts.missing),
        (1, 0, 1),
        "{verified:#?}"
    );
}
