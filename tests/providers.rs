//! Provider profiles through the command line (issue 15): a Microsoft 365 or Zimbra source's
//! folders that hold no mail are left out of the copy and of verification and listed; a
//! destination's reserved folder name is a reason `plan` gives (exit 5) before anything is
//! written. Maildir on both sides: the profiles act on names, whatever the store.

mod support;

use mailmove::core::{FolderPath, Message, MessageBody, MessageMeta};
use mailmove::registry::{open_sink, Credentials};
use support::*;

/// A Maildir with two messages in each of these folders.
async fn maildir_with(url: &str, folders: &[&str]) {
    let sink = open_sink(url, &Credentials::default()).await.unwrap();
    for name in folders {
        let folder = FolderPath::parse(name);
        sink.create_folder(&folder).await.unwrap();
        for index in 0..2 {
            let body = format!("Subject: {name} {index}\r\n\r\nbody\r\n");
            let meta = MessageMeta::new(index.to_string(), body.len() as u64);
            sink.append(&folder, &Message::new(meta, MessageBody::from(body.into_bytes()))).await.unwrap();
        }
        sink.flush(&folder).await.unwrap();
    }
}

#[tokio::test]
async fn a_microsoft_365_sources_non_mail_folders_are_left_out_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination) =
        (format!("maildir:{}/old", dir.path().display()), format!("maildir:{}/new", dir.path().display()));
    maildir_with(&source, &["INBOX", "Calendar", "Calendar/Birthdays", "Contacts", "Projects"]).await;
    let state = dir.path().join("state");
    let copy = run(&state, &["copy", &source, &destination, "--src-provider", "microsoft365", "--json"]);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    let report = last_json(&copy);
    assert_eq!(report["copied"], 4, "{report}");
    let left_out: Vec<&str> =
        report["left_out"].as_array().unwrap().iter().map(|f| f["folder"].as_str().unwrap()).collect();
    assert_eq!(left_out, ["Calendar", "Calendar/Birthdays", "Contacts"], "{report}");
    assert!(report["left_out"][0]["reason"].as_str().unwrap().contains("microsoft365 profile"), "{report}");
    let held: Vec<String> = content(&destination).await.into_keys().map(|(folder, _)| folder).collect();
    assert!(held.iter().all(|folder| folder == "INBOX" || folder == "Projects"), "{held:?}");

    // Verification leaves them out too: identical.
    let verify = run(&state, &["verify", &source, &destination, "--src-provider", "microsoft365"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
    // The human summary names them.
    let again = run(&state, &["copy", &source, &destination, "--src-provider", "microsoft365"]);
    assert!(
        stderr(&again).contains("LEFT OUT Calendar (2 messages): not mail over IMAP"),
        "{}",
        stderr(&again)
    );
    // `none` takes every folder.
    let all = run(&state, &["copy", &source, &destination, "--src-provider", "none", "--json"]);
    assert_eq!(last_json(&all)["copied"], 6);
}

#[tokio::test]
async fn plan_names_a_folder_the_destination_provider_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination) =
        (format!("maildir:{}/old", dir.path().display()), format!("maildir:{}/new", dir.path().display()));
    maildir_with(&source, &["INBOX", "Files"]).await;
    let state = dir.path().join("state");
    let plan = run(&state, &["plan", &source, &destination, "--dst-provider", "microsoft365", "--json"]);
    assert_eq!(plan.status.code(), Some(5), "{}", stderr(&plan));
    let found = last_json(&plan);
    let problems = found["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{found}");
    assert!(problems[0].as_str().unwrap().contains("a name microsoft365 refuses"), "{found}");
    // Mapped elsewhere, the copy can succeed.
    let mapped = run(
        &state,
        &["plan", &source, &destination, "--dst-provider", "microsoft365", "--map", "Files=Old files"],
    );
    assert_eq!(mapped.status.code(), Some(0), "{}", stderr(&mapped));
    let unknown = run(&state, &["plan", &source, &destination, "--dst-provider", "hotmail"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
}

#[tokio::test]
async fn plan_says_how_long_the_destination_providers_rates_make_the_copy_and_names_case_twins() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination) =
        (format!("maildir:{}/old", dir.path().display()), format!("maildir:{}/new", dir.path().display()));
    maildir_with(&source, &["INBOX", "Projects", "projects"]).await;
    let state = dir.path().join("state");
    // Microsoft 365 takes 3,600 messages an hour: 6 messages are 6 seconds at least.
    let plan = run(&state, &["plan", &source, &destination, "--dst-provider", "microsoft365", "--json"]);
    let found = last_json(&plan);
    assert_eq!(found["least_duration_secs"], 6, "{found}");
    assert_eq!(found["duration_basis"], "3600 messages an hour", "{found}");
    // "Projects" and "projects" are one folder there.
    assert_eq!(plan.status.code(), Some(5), "{}", stderr(&plan));
    let problems = found["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{found}");
    assert!(problems[0].as_str().unwrap().contains("one folder on microsoft365"), "{found}");
    // Mapped apart, the copy can succeed; the human summary says the least duration.
    let mapped = run(
        &state,
        &[
            "plan",
            &source,
            &destination,
            "--dst-provider",
            "microsoft365",
            "--map",
            "projects=Projects (old)",
        ],
    );
    assert_eq!(mapped.status.code(), Some(0), "{}", stderr(&mapped));
    assert!(stderr(&mapped).contains("at least 6 s (3600 messages an hour)"), "{}", stderr(&mapped));
    // A provider that compares names with case has no such problem.
    let zimbra = run(&state, &["plan", &source, &destination, "--dst-provider", "zimbra"]);
    assert_eq!(zimbra.status.code(), Some(0), "{}", stderr(&zimbra));
}

#[tokio::test]
async fn long_lines_are_re_encoded_only_when_asked_and_verify_knows_the_copies() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination) =
        (format!("maildir:{}/old", dir.path().display()), format!("maildir:{}/new", dir.path().display()));
    let sink = open_sink(&source, &Credentials::default()).await.unwrap();
    let inbox = FolderPath::inbox();
    sink.create_folder(&inbox).await.unwrap();
    for body in [
        format!("Subject: long\r\nContent-Type: text/plain\r\n\r\n{}\r\n", "word ".repeat(3_000)),
        "Subject: short\r\n\r\nshort\r\n".to_string(),
    ] {
        let meta = MessageMeta::new("1", body.len() as u64);
        sink.append(&inbox, &Message::new(meta, MessageBody::from(body.into_bytes()))).await.unwrap();
    }
    sink.flush(&inbox).await.unwrap();
    let state = dir.path().join("state");
    let copy = run(
        &state,
        &["copy", &source, &destination, "--dst-provider", "microsoft365", "--encode-long-lines", "--json"],
    );
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    let report = last_json(&copy);
    assert_eq!(report["copied"], 2, "{report}");
    let transformed = report["transformed"].as_array().unwrap();
    assert_eq!(transformed.len(), 1, "{report}");
    assert!(transformed[0]["reason"].as_str().unwrap().starts_with("long-lines-encoded"), "{report}");
    // Verify knows the copy when told; without the option it is a difference.
    let verify = run(&state, &["verify", &source, &destination, "--encode-long-lines=9900"]);
    assert_eq!(verify.status.code(), Some(0), "{}\n{}", stdout(&verify), stderr(&verify));
    let without = run(&state, &["verify", &source, &destination]);
    assert_eq!(without.status.code(), Some(3), "{}", stderr(&without));
    let bad = run(&state, &["copy", &source, &destination, "--encode-long-lines=10"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}
