//! Through the engine against the throw-away Dovecot: a multi-folder account (non-ASCII and nested
//! folders, flags with keywords, old internal dates) copied IMAP→IMAP and IMAP→Maildir→IMAP, and a
//! POP3 INBOX copied to Maildir and to IMAP: byte-exact, flags and dates equal, re-runs copy 0.

mod support;

use support::detailed_content;

use mailmove::core::checkpoint::Checkpoint;
use mailmove::core::engine::{copy, CopyOptions, EventSink};
use mailmove::core::testkit::Fixture;
use mailmove::core::{MailSink, MailSource, Secret};
use mailmove::registry::{open_sink, open_source, Credentials};

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the test suite through scripts/test.sh"))
}

fn credentials() -> Credentials {
    Credentials {
        password: Some(Secret::new(var("MAILMOVE_TEST_PASSWORD"))),
        token: None,
        token_provider: None,
    }
}

fn user(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand::random::<u32>())
}

fn imap(user: &str) -> String {
    format!(
        "imap://{user}@127.0.0.1:{}/?tls=starttls&ca={}",
        var("MAILMOVE_TEST_IMAP_PORT"),
        var("MAILMOVE_TEST_CA")
    )
}

fn pop3(user: &str) -> String {
    format!("pop3s://{user}@127.0.0.1:{}/?ca={}", var("MAILMOVE_TEST_POP3S_PORT"), var("MAILMOVE_TEST_CA"))
}

async fn run_copy(from: &str, to: &str, state: &std::path::Path) -> (u64, u64) {
    let source = open_source(from, &credentials()).await.unwrap();
    let sink = open_sink(to, &credentials()).await.unwrap();
    let checkpoint = Checkpoint::open(state, &source.identity(), &sink.identity()).unwrap();
    let report =
        copy(source.as_ref(), sink.as_ref(), &CopyOptions::default(), &checkpoint, &EventSink::none())
            .await
            .unwrap();
    assert_eq!(report.failed, 0, "{from} -> {to}: {:?}", report.failures);
    (report.copied, report.skipped)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_folder_account_travels_imap_to_imap_and_through_maildir() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (imap(&user("rt-a")), imap(&user("rt-b")), imap(&user("rt-c")));
    let maildir = format!("maildir:{}/through", dir.path().display());

    // The kit's standard fixture: INBOX with awkward content and keywords, Archive/2019 (nested),
    // "Entwürfe & Co" (non-ASCII and '&'), an empty folder; internal dates from 2001 to 2024.
    let fixture = Fixture::standard();
    let sink = open_sink(&a, &credentials()).await.unwrap();
    fixture.populate(sink.as_ref()).await.unwrap();
    let total: usize = fixture.folders.iter().map(|f| f.messages.len()).sum();

    assert_eq!(run_copy(&a, &b, &dir.path().join("ab.sqlite")).await.0 as usize, total);
    assert_eq!(run_copy(&a, &b, &dir.path().join("ab.sqlite")).await.0, 0, "a re-run copies nothing");
    assert_eq!(run_copy(&a, &maildir, &dir.path().join("am.sqlite")).await.0 as usize, total);
    assert_eq!(run_copy(&maildir, &c, &dir.path().join("mc.sqlite")).await.0 as usize, total);

    let open = |url: String| async move { open_source(&url, &credentials()).await.unwrap() };
    let original = detailed_content(open(a.clone()).await.as_ref(), true).await;
    assert_eq!(original.values().sum::<usize>(), total);
    assert!(
        original.keys().any(|k| k.0 == "Entwürfe & Co"),
        "{:?}",
        original.keys().map(|k| &k.0).collect::<Vec<_>>()
    );
    assert!(original.keys().any(|k| k.2.contains(&"$Forwarded".to_string())), "keywords were not stored");
    assert_eq!(detailed_content(open(b).await.as_ref(), true).await, original, "IMAP -> IMAP differs");
    assert_eq!(
        detailed_content(open(maildir).await.as_ref(), true).await,
        original,
        "IMAP -> Maildir differs"
    );
    assert_eq!(
        detailed_content(open(c).await.as_ref(), true).await,
        original,
        "IMAP -> Maildir -> IMAP differs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pop3_inbox_travels_to_maildir_and_to_imap() {
    let dir = tempfile::tempdir().unwrap();
    let account = user("rt-pop");
    let seed = open_sink(&imap(&account), &credentials()).await.unwrap();
    let fixture = Fixture::inbox_only();
    fixture.populate(seed.as_ref()).await.unwrap();
    let count = fixture.folders[0].messages.len();

    let maildir = format!("maildir:{}/rescued", dir.path().display());
    let destination = imap(&user("rt-pop-dst"));
    for (to, state) in [(&maildir, "pm.sqlite"), (&destination, "pi.sqlite")] {
        assert_eq!(run_copy(&pop3(&account), to, &dir.path().join(state)).await, (count as u64, 0));
        assert_eq!(
            run_copy(&pop3(&account), to, &dir.path().join(state)).await.0,
            0,
            "a re-run copies nothing"
        );
    }
    let expected =
        detailed_content(open_source(&pop3(&account), &credentials()).await.unwrap().as_ref(), false).await;
    assert_eq!(expected.values().sum::<usize>(), count);
    // POP3 has no flags or dates; the bytes must be the fixture's, exactly.
    let fixture_bytes: Vec<&Vec<u8>> = fixture.folders[0].messages.iter().map(|m| &m.body).collect();
    assert!(expected.keys().all(|k| fixture_bytes.contains(&&k.1)), "POP3 did not return the stored bytes");
    for url in [maildir, destination] {
        let got = detailed_content(open_source(&url, &credentials()).await.unwrap().as_ref(), false).await;
        assert_eq!(got, expected, "{url}");
    }
}
