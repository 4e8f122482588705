//! `mailmove verify --state FILE` end to end on Maildir: after the copy, mail that arrives at the
//! destination is information, not a difference, and the exit status stays the clean one.

mod support;

use std::sync::Arc;

use mailmove::core::engine::Copier;
use mailmove::core::memory::MemoryStore;
use mailmove::core::{Flags, FolderPath};
use mailmove::registry::{open_sink, Credentials};
use support::*;

/// Delivers one message into the INBOX of the store at `url`, as a new server receives mail after
/// the MX switch.
async fn deliver(url: &str) {
    let mail = MemoryStore::new("mx");
    let body = b"From: someone@example.org\r\nSubject: after the switch\r\nMessage-ID: <late@example.org>\r\n\r\nhello\r\n";
    mail.insert(&FolderPath::inbox(), body.to_vec(), Flags::default(), None);
    let sink = open_sink(url, &Credentials::default()).await.expect("open sink");
    let report = Copier::from_arcs(Arc::new(mail), sink.into()).run().await.expect("deliver");
    assert_eq!(report.copied, 1);
}

#[tokio::test]
async fn verify_with_the_jobs_state_reports_arrivals_and_exits_clean() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/src", dir.path().display());
    let destination = format!("maildir:{}/dst", dir.path().display());
    let state = dir.path().join("job.sqlite");
    let state_arg = state.to_str().unwrap();
    fill(&source, 40, 11, 50_000).await;
    let copy = run(dir.path(), &["copy", &source, &destination, "--state", state_arg, "--quiet"]);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    deliver(&destination).await;

    // Not knowing the job, the new message is extra: a difference.
    let blind = run(dir.path(), &["verify", &source, &destination, "--json"]);
    assert_eq!(blind.status.code(), Some(3), "{}", stderr(&blind));
    assert_eq!(last_json(&blind)["counts"]["extra"], 1);

    // Knowing it, the new message arrived at the destination: information, exit status 0.
    let known = run(dir.path(), &["verify", &source, &destination, "--state", state_arg, "--json"]);
    assert_eq!(known.status.code(), Some(0), "{}", stderr(&known));
    let report = last_json(&known);
    assert_eq!(report["identical"], true, "{report}");
    assert_eq!(
        (report["counts"]["extra"].as_u64(), report["counts"]["arrived"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(report["arrived"][0]["kind"], "arrived");
    assert_eq!(report["arrived"][0]["subject"], "after the switch");
    assert_eq!(report["arrived"][0]["destination_folder"], "INBOX");
    assert_eq!(report["state"], state_arg);

    let human = run(dir.path(), &["verify", &source, &destination, "--state", state_arg]);
    assert_eq!(human.status.code(), Some(0), "{}", stderr(&human));
    let text = stderr(&human);
    assert!(text.contains("IDENTICAL") && text.contains("Arrived at the destination"), "{text}");
    assert!(text.contains("after the switch"), "{text}");
}

#[tokio::test]
async fn verify_refuses_the_state_file_of_another_job() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/src", dir.path().display());
    let destination = format!("maildir:{}/dst", dir.path().display());
    let other = format!("maildir:{}/other", dir.path().display());
    let state = dir.path().join("job.sqlite");
    let state_arg = state.to_str().unwrap();
    fill(&source, 5, 3, 20_000).await;
    // Two jobs from one source; the state file is the first one's.
    let copy = run(dir.path(), &["copy", &source, &destination, "--state", state_arg, "--quiet"]);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    let copy = run(dir.path(), &["copy", &source, &other, "--quiet"]);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));

    let wrong = run(dir.path(), &["verify", &source, &other, "--state", state_arg]);
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("belongs to another job"), "{}", stderr(&wrong));
    let missing = dir.path().join("none.sqlite");
    let absent = run(dir.path(), &["verify", &source, &destination, "--state", missing.to_str().unwrap()]);
    assert_eq!(absent.status.code(), Some(2), "{}", stderr(&absent));
    assert!(stderr(&absent).contains("no state file"), "{}", stderr(&absent));
}
