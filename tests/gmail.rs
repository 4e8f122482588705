//! Gmail as it is (issue 15), against a scripted Gmail ([`gmail::FakeGmail`]): a message under
//! several labels is one message, listed in each label's folder and in All Mail.
//!
//! * Gmail → Maildir: each label's folder gets its messages, All Mail only the unlabelled ones,
//!   Starred/Important/Spam/Trash are left out and listed (Spam and Trash on request); the
//!   `first` policy puts every message once; verification agrees; a re-run copies nothing.
//! * Maildir → Gmail: a message in two folders is uploaded once and labelled for the second.
//! * Gmail → Gmail: every message once at the destination, with the labels it had, each
//!   uploaded once.

#[path = "support/gmail.rs"]
mod gmail;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use gmail::FakeGmail;
use mailmove::core::{FolderPath, Message, MessageBody, MessageMeta};
use mailmove::registry::{open_sink, Credentials};
use support::*;

fn message(name: &str) -> Vec<u8> {
    format!(
        "From: ana@example.com\r\nTo: bo@example.com\r\nMessage-ID: <{name}@example.com>\r\nSubject: {name}\r\n\r\nThis is {name}.\r\n"
    )
    .into_bytes()
}

/// `mailmove ARGS` with both sides' password set (the scripted server takes any).
fn mailmove_run(state: &Path, args: &[&str]) -> Output {
    mailmove()
        .env("MAILMOVE_STATE_DIR", state)
        .env("MAILMOVE_SRC_PASSWORD", "pw")
        .env("MAILMOVE_DST_PASSWORD", "pw")
        .args(args)
        .output()
        .expect("run mailmove")
}

/// The account every Gmail-source test starts from.
async fn gmail_with_labels() -> FakeGmail {
    let gmail = FakeGmail::start().await;
    gmail.with(|account| {
        account.add(&message("inbox-and-work"), &["\\Inbox", "Work"], &["\\Seen"]);
        account.add(&message("work-and-travel"), &["Work", "Travel/2024"], &["\\Seen"]);
        account.add(&message("archived"), &[], &["\\Seen"]);
        account.add(&message("sent"), &["\\Sent"], &["\\Seen"]);
        account.add(&message("spam"), &["\\Spam"], &[]);
        account.add(&message("trash"), &["\\Trash"], &["\\Seen"]);
        account.add(&message("starred"), &["\\Inbox"], &["\\Seen", "\\Flagged"]);
        account.add(&message("important-only"), &["\\Important"], &[]);
    });
    gmail
}

/// folder → the subjects it holds (sorted).
async fn subjects(url: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ((folder, _), _) in content(url).await {
        out.entry(folder).or_default();
    }
    let source = mailmove::registry::open_source(url, &Credentials::default()).await.unwrap();
    for folder in out.clone().keys() {
        let path = FolderPath::parse(folder);
        let mut listing = source.list_messages(&path, None);
        let mut keys = Vec::new();
        use futures::StreamExt;
        while let Some(meta) = listing.next().await {
            keys.push(meta.unwrap().key);
        }
        let mut names = Vec::new();
        let mut fetched = source.fetch(&path, &keys);
        while let Some(message) = fetched.next().await {
            let body = message.unwrap().body.to_bytes().unwrap();
            let text = String::from_utf8_lossy(&body).to_string();
            let subject = text.lines().find_map(|line| line.strip_prefix("Subject: ")).unwrap_or("?");
            names.push(subject.to_string());
        }
        names.sort();
        out.insert(folder.clone(), names);
    }
    out
}

fn owned(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(folder, names)| (folder.to_string(), names.iter().map(|n| n.to_string()).collect()))
        .collect()
}

fn left_out_folders(report: &serde_json::Value) -> Vec<String> {
    report["left_out"].as_array().unwrap().iter().map(|f| f["folder"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_to_maildir_puts_each_label_in_its_folder_and_all_mail_only_the_unlabelled() {
    let gmail = gmail_with_labels().await;
    let dir = tempfile::tempdir().unwrap();
    let (state, destination) = (dir.path().join("state"), format!("maildir:{}/new", dir.path().display()));
    let source = gmail.url("");
    // Recognised by its X-GM-EXT-1 capability (the host is 127.0.0.1).
    let copy = mailmove_run(&state, &["copy", &source, &destination, "--json"]);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    let report = last_json(&copy);
    assert_eq!((report["copied"].as_u64(), report["failed"].as_u64()), (Some(8), Some(0)), "{report}");
    assert_eq!(
        left_out_folders(&report),
        ["[Gmail]/Important", "[Gmail]/Spam", "[Gmail]/Starred", "[Gmail]/Trash"],
        "{report}"
    );
    assert!(report["left_out"][0]["reason"].as_str().unwrap().contains("Gmail profile"), "{report}");
    assert_eq!(
        subjects(&destination).await,
        owned(&[
            ("INBOX", &["inbox-and-work", "starred"]),
            ("Travel/2024", &["work-and-travel"]),
            ("Work", &["inbox-and-work", "work-and-travel"]),
            // A new Maildir has no folder of these roles: the source's names are kept.
            ("[Gmail]/All Mail", &["archived", "important-only"]),
            ("[Gmail]/Sent Mail", &["sent"]),
        ])
    );
    // The starred message keeps its flag (Starred is a view of it).
    let held = content(&destination).await;
    assert_eq!(held.values().sum::<usize>(), 8);

    // Verification applies the same policy: identical.
    let verify = mailmove_run(&state, &["verify", &source, &destination]);
    assert_eq!(verify.status.code(), Some(0), "{}\n{}", stdout(&verify), stderr(&verify));
    // A re-run copies nothing.
    let again = mailmove_run(&state, &["copy", &source, &destination, "--json"]);
    assert_eq!(last_json(&again)["copied"], 0, "{}", stderr(&again));
    // Spam and Trash on request.
    let with_trash = mailmove_run(&state, &["copy", &source, &destination, "--gmail-spam-trash", "--json"]);
    let report = last_json(&with_trash);
    assert_eq!(report["copied"], 2, "{report}");
    assert_eq!(left_out_folders(&report), ["[Gmail]/Important", "[Gmail]/Starred"], "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_to_maildir_with_the_first_policy_copies_every_message_once() {
    let gmail = gmail_with_labels().await;
    let dir = tempfile::tempdir().unwrap();
    let (state, destination) = (dir.path().join("state"), format!("maildir:{}/new", dir.path().display()));
    let source = gmail.url("");
    let copy = mailmove_run(&state, &["copy", &source, &destination, "--gmail-labels", "first", "--json"]);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    assert_eq!(last_json(&copy)["copied"], 6);
    assert_eq!(
        subjects(&destination).await,
        owned(&[
            ("INBOX", &["inbox-and-work", "starred"]),
            // "Travel/2024" sorts before "Work".
            ("Travel/2024", &["work-and-travel"]),
            ("[Gmail]/All Mail", &["archived", "important-only"]),
            ("[Gmail]/Sent Mail", &["sent"]),
        ])
    );
    let verify = mailmove_run(&state, &["verify", &source, &destination, "--gmail-labels", "first"]);
    assert_eq!(verify.status.code(), Some(0), "{}\n{}", stdout(&verify), stderr(&verify));
    let again = mailmove_run(&state, &["copy", &source, &destination, "--gmail-labels", "first", "--json"]);
    assert_eq!(last_json(&again)["copied"], 0, "{}", stderr(&again));
    let unknown = mailmove_run(&state, &["copy", &source, &destination, "--gmail-labels", "stars"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_to_maildir_with_the_keywords_policy_keeps_the_labels_as_keywords() {
    let gmail = gmail_with_labels().await;
    let dir = tempfile::tempdir().unwrap();
    let (state, destination) = (dir.path().join("state"), format!("maildir:{}/new", dir.path().display()));
    let source = gmail.url("");
    let copy = mailmove_run(&state, &["copy", &source, &destination, "--gmail-labels", "keywords", "--json"]);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    assert_eq!(last_json(&copy)["copied"], 6);
    // folder → (subject, keywords) of each copy.
    let store = mailmove::registry::open_source(&destination, &Credentials::default()).await.unwrap();
    let mut keywords = BTreeMap::new();
    for folder in ["INBOX", "Travel/2024"] {
        let path = FolderPath::parse(folder);
        let mut listing = store.list_messages(&path, None);
        use futures::StreamExt;
        while let Some(meta) = listing.next().await {
            let meta = meta.unwrap();
            let mut fetched = store.fetch(&path, std::slice::from_ref(&meta.key));
            let body = fetched.next().await.unwrap().unwrap().body.to_bytes().unwrap();
            let text = String::from_utf8_lossy(&body).to_string();
            let subject = text.lines().find_map(|line| line.strip_prefix("Subject: ")).unwrap().to_string();
            keywords.insert(subject, meta.flags.keywords.iter().cloned().collect::<Vec<_>>());
        }
    }
    assert_eq!(keywords["inbox-and-work"], ["Work"]);
    assert_eq!(
        keywords["work-and-travel"],
        ["Work"],
        "its folder is its first label, its other label a keyword"
    );
    assert!(keywords["starred"].is_empty());
    let verify = mailmove_run(&state, &["verify", &source, &destination, "--gmail-labels", "keywords"]);
    assert_eq!(verify.status.code(), Some(0), "{}\n{}", stdout(&verify), stderr(&verify));
    let again =
        mailmove_run(&state, &["copy", &source, &destination, "--gmail-labels", "keywords", "--json"]);
    assert_eq!(last_json(&again)["copied"], 0, "{}", stderr(&again));
}

/// A Maildir with these (folder, message names).
async fn maildir_with(url: &str, folders: &[(&str, &[&str])]) {
    let sink = open_sink(url, &Credentials::default()).await.unwrap();
    for (name, messages) in folders {
        let folder = FolderPath::parse(name);
        sink.create_folder(&folder).await.unwrap();
        for (index, name) in messages.iter().enumerate() {
            let body = message(name);
            let meta = MessageMeta::new(index.to_string(), body.len() as u64);
            sink.append(&folder, &Message::new(meta, MessageBody::from(body))).await.unwrap();
        }
        sink.flush(&folder).await.unwrap();
    }
}

/// Each message of the account by subject, with its labels.
fn labels_by_subject(gmail: &FakeGmail) -> BTreeMap<String, BTreeSet<String>> {
    gmail
        .with(|account| account.labels())
        .into_iter()
        .map(|(body, labels)| {
            let text = String::from_utf8_lossy(&body).to_string();
            let subject = text.lines().find_map(|line| line.strip_prefix("Subject: ")).unwrap().to_string();
            (subject, labels)
        })
        .collect()
}

fn set(labels: &[&str]) -> BTreeSet<String> {
    labels.iter().map(|label| label.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maildir_to_gmail_uploads_a_message_in_two_folders_once_and_labels_it() {
    let gmail = FakeGmail::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (state, source) = (dir.path().join("state"), format!("maildir:{}/old", dir.path().display()));
    maildir_with(&source, &[("INBOX", &["a", "both"]), ("Projects", &["both", "b"]), ("Sent", &["c"])]).await;
    // The second upload is throttled once: waited out and sent again.
    gmail.with(|account| account.throttle_appends = vec![1]);
    let destination = gmail.url("");
    let copy = mailmove_run(&state, &["copy", &source, &destination, "--json"]);
    assert_eq!(copy.status.code(), Some(0), "{}\n{}", stdout(&copy), stderr(&copy));
    let report = last_json(&copy);
    assert_eq!((report["copied"].as_u64(), report["labelled"].as_u64()), (Some(5), Some(1)), "{report}");
    let (appends, duplicates) = gmail.with(|account| (account.appends, account.duplicate_appends));
    assert_eq!(
        (appends, duplicates),
        (5, 0),
        "one upload per message (one of them throttled once), none twice"
    );
    assert_eq!(
        labels_by_subject(&gmail),
        BTreeMap::from([
            ("a".to_string(), set(&["\\Inbox"])),
            ("b".to_string(), set(&["Projects"])),
            ("both".to_string(), set(&["\\Inbox", "Projects"])),
            ("c".to_string(), set(&["\\Sent"])),
        ])
    );
    let again = mailmove_run(&state, &["copy", &source, &destination, "--json"]);
    assert_eq!(last_json(&again)["copied"], 0, "{}", stderr(&again));
    assert_eq!(gmail.with(|account| account.appends), 5);
    let verify = mailmove_run(&state, &["verify", &source, &destination, "--json"]);
    assert_eq!(verify.status.code(), Some(0), "{}\n{}", stdout(&verify), stderr(&verify));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmail_to_gmail_keeps_every_message_once_with_its_labels() {
    let (from, to) = (gmail_with_labels().await, FakeGmail::start().await);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (source, destination) = (from.url(""), to.url(""));
    let copy = mailmove_run(&state, &["copy", &source, &destination, "--json"]);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    let report = last_json(&copy);
    // 8 folder copies of 6 messages (Spam and Trash left out): two of them labels.
    assert_eq!((report["copied"].as_u64(), report["labelled"].as_u64()), (Some(8), Some(2)), "{report}");
    let (appends, duplicates) = to.with(|account| (account.appends, account.duplicate_appends));
    assert_eq!((appends, duplicates), (6, 0), "each message uploaded once");
    let expected: BTreeMap<String, BTreeSet<String>> = labels_by_subject(&from)
        .into_iter()
        .filter(|(subject, _)| subject != "spam" && subject != "trash")
        // Starred is a flag, Important Gmail's own marking: neither is a folder copied.
        .map(|(subject, labels)| (subject, labels.into_iter().filter(|l| l != "\\Important").collect()))
        .collect();
    assert_eq!(labels_by_subject(&to), expected);
    let verify = mailmove_run(&state, &["verify", &source, &destination, "--json"]);
    assert_eq!(verify.status.code(), Some(0), "{}\n{}", stdout(&verify), stderr(&verify));
    let again = mailmove_run(&state, &["copy", &source, &destination, "--json"]);
    assert_eq!(last_json(&again)["copied"], 0, "{}", stderr(&again));
    assert_eq!(to.with(|account| account.appends), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gmail_destinations_daily_upload_allowance_pauses_the_copy_until_the_next_day() {
    let gmail = FakeGmail::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (state, source) = (dir.path().join("state"), format!("maildir:{}/old", dir.path().display()));
    let names: Vec<String> = (0..20).map(|index| format!("message-{index:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    maildir_with(&source, &[("INBOX", &names)]).await;
    let size = message("message-00").len() as u64;
    let destination = gmail.url("");
    // An allowance of 5.5 messages: 5 go, then the run pauses and says when it can go on.
    let allowance = (size * 11 / 2).to_string();
    let copy = mailmove_run(&state, &["copy", &source, &destination, "--daily-upload", &allowance, "--json"]);
    assert_eq!(copy.status.code(), Some(6), "{}", stderr(&copy));
    let report = last_json(&copy);
    assert_eq!(
        (report["outcome"].as_str(), report["copied"].as_u64()),
        (Some("paused"), Some(5)),
        "{report}"
    );
    let reason = report["paused_reason"].as_str().unwrap();
    assert!(reason.contains("upload allowance") && reason.contains("run again after"), "{reason}");
    assert_eq!(gmail.with(|account| account.appends), 5);
    // The next run the same day: the allowance is still spent; nothing is sent.
    let again =
        mailmove_run(&state, &["copy", &source, &destination, "--daily-upload", &allowance, "--json"]);
    let report = last_json(&again);
    assert_eq!(
        (report["outcome"].as_str(), report["copied"].as_u64()),
        (Some("paused"), Some(0)),
        "{report}"
    );
    assert_eq!(gmail.with(|account| account.appends), 5);
    // Without the allowance the copy finishes: every message once.
    let rest = mailmove_run(&state, &["copy", &source, &destination, "--daily-upload", "none", "--json"]);
    assert_eq!(rest.status.code(), Some(0), "{}", stderr(&rest));
    assert_eq!(last_json(&rest)["copied"], 15);
    assert_eq!(gmail.with(|account| (account.appends, account.duplicate_appends)), (20, 0));
    // Recognised as Gmail, the destination gets Gmail's allowance by default; `plan` says so.
    let plan = mailmove_run(&state, &["plan", &source, &destination, "--json"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    assert_eq!(last_json(&plan)["size_limit"], 35_651_584);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_hidden_from_imap_leaves_its_messages_to_all_mail() {
    let gmail = FakeGmail::start().await;
    gmail.with(|account| {
        account.add(&message("hidden-only"), &["Hidden"], &[]);
        account.add(&message("hidden-and-work"), &["Hidden", "Work"], &[]);
        // Gmail's "Show in IMAP" unchecked for the label: its folder is not listed.
        account.hidden.insert("Hidden".to_string());
    });
    let dir = tempfile::tempdir().unwrap();
    let source = gmail.url("");
    for policy in ["folders", "first"] {
        let (state, destination) = (
            dir.path().join(format!("state-{policy}")),
            format!("maildir:{}/{policy}", dir.path().display()),
        );
        let copy = mailmove_run(&state, &["copy", &source, &destination, "--gmail-labels", policy, "--json"]);
        assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
        assert_eq!(
            subjects(&destination).await,
            owned(&[("Work", &["hidden-and-work"]), ("[Gmail]/All Mail", &["hidden-only"])]),
            "{policy}"
        );
        let verify = mailmove_run(&state, &["verify", &source, &destination, "--gmail-labels", policy]);
        assert_eq!(verify.status.code(), Some(0), "{policy}: {}\n{}", stdout(&verify), stderr(&verify));
    }
}
