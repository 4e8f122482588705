//! The `pst:` source end to end through the `mailmove` command, against real stores: an Outlook
//! PST of `../shared/corpus/pst` (or `$MAILMOVE_CORPUS/pst`) copied into a Maildir and into the
//! throw-away Dovecot of `scripts/test.sh`, verified, copied again (nothing left to do), audited
//! with `inventory` and `plan`; its non-mail folders left out with warnings; a PST refused as a
//! destination; a file that is not a PST and a truncated PST reported truthfully. The Dovecot test
//! fails (never skips) without the server.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use mailmove::core::Fingerprint;
use support::*;

/// Exit statuses (`src/cli/mod.rs`).
const EXIT_OK: i32 = 0;
const EXIT_ERROR: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_INCOMPLETE: i32 = 3;
const EXIT_DAMAGED: i32 = 4;

/// The subject line of both messages of `outlook.pst`.
const SUBJECT: &str = "Subject: Welcome to Microsoft Office Outlook 2003";

/// A file of the PST corpus: `$MAILMOVE_CORPUS/pst/NAME`, else `<workspace>/../shared/corpus/pst/NAME`.
fn corpus(name: &str) -> PathBuf {
    let dir = match std::env::var_os("MAILMOVE_CORPUS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("pst"),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/pst"),
    };
    let file = dir.join(name);
    assert!(file.is_file(), "{} is missing: the PST corpus must be beside the checkout", file.display());
    file
}

fn pst(name: &str) -> String {
    format!("pst:{}", corpus(name).display())
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

/// Runs `mailmove` with extra environment variables (passwords).
fn run_env(state: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = mailmove();
    command.env("MAILMOVE_STATE_DIR", state).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run mailmove")
}

/// The message files of a Maildir++ tree (every file in a `cur` or `new` directory below `root`).
fn message_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else { return out };
    for path in entries.map(|entry| entry.expect("dir entry").path()) {
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name == "cur" || name == "new") {
                out.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
            } else {
                out.extend(message_files(&path));
            }
        }
    }
    out
}

fn read_report(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("report {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the report is JSON")
}

/// The report's entry of source folder `name`.
fn folder<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let folders = report["folders"].as_array().expect("folders");
    folders.iter().find(|f| f["folder"] == name).unwrap_or_else(|| panic!("no folder {name} in {report}"))
}

/// Messages per folder of a store's content.
fn per_folder(content: &BTreeMap<(String, Fingerprint), usize>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for ((folder, _), count) in content {
        *out.entry(folder.clone()).or_default() += count;
    }
    out
}

/// The content of `outlook.pst` under the destination's folder names (its `Inbox` is `INBOX`).
async fn outlook_content_at_destination() -> BTreeMap<(String, Fingerprint), usize> {
    let source = content(&pst("outlook.pst")).await;
    assert_eq!(total(&source), 2, "{source:?}");
    source
        .into_iter()
        .map(|((folder, hash), n)| ((if folder == "Inbox" { "INBOX".into() } else { folder }, hash), n))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn outlook_pst_to_maildir_copies_verifies_and_a_rerun_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mail = dir.path().join("mail");
    let destination = format!("maildir:{}", mail.display());
    let source = pst("outlook.pst");
    let report_file = dir.path().join("report.json");

    let first = run(&state, &["copy", &source, &destination, "--report", report_file.to_str().unwrap()]);
    assert_eq!(code(&first), Some(EXIT_OK), "stderr: {}", stderr(&first));
    let summary = stderr(&first);
    assert!(summary.lines().any(|l| l.starts_with("RECONSTRUCTED 2 ")), "{summary}");
    assert!(!summary.contains("WARNING"), "{summary}");
    let report = read_report(&report_file);
    assert_eq!(report["outcome"], "complete", "{report}");
    assert_eq!((report["copied"].as_u64(), report["failed"].as_u64()), (Some(2), Some(0)), "{report}");
    assert_eq!(report["reconstructed"], 2, "{report}");
    assert_eq!(report["warnings"], serde_json::json!([]), "{report}");
    assert_eq!(report["damaged"], serde_json::json!([]), "{report}");
    for (name, to) in [("Inbox", "INBOX"), ("Recovered_Group2", "Recovered_Group2")] {
        let entry = folder(&report, name);
        assert_eq!(entry["destination"], to, "{entry}");
        assert_eq!(
            (entry["copied"].as_u64(), entry["reconstructed"].as_u64()),
            (Some(1), Some(1)),
            "{entry}"
        );
    }

    // Two messages in the Maildir, one in INBOX (the top level) and one in `.Recovered_Group2`.
    let files = message_files(&mail);
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(message_files(&mail.join(".Recovered_Group2")).len(), 1, "{files:?}");
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        assert!(text.lines().any(|line| line.trim_end() == SUBJECT), "{}: no {SUBJECT:?}", file.display());
        let attachments = text.matches("Content-Disposition: attachment").count();
        assert_eq!(attachments, 11, "{}: {attachments} attachments", file.display());
    }
    assert_eq!(content(&destination).await, outlook_content_at_destination().await);

    let verify = run(&state, &["verify", &source, &destination, "--json"]);
    assert_eq!(code(&verify), Some(EXIT_OK), "stderr: {}\nstdout: {}", stderr(&verify), stdout(&verify));
    let found = last_json(&verify);
    assert_eq!((found["identical"].as_bool(), found["complete"].as_bool()), (Some(true), Some(true)));
    assert_eq!(found["counts"]["missing"], 0, "{found}");

    let again = run(&state, &["copy", &source, &destination, "--json"]);
    assert_eq!(code(&again), Some(EXIT_OK), "stderr: {}", stderr(&again));
    let report = last_json(&again);
    assert_eq!((report["copied"].as_u64(), report["skipped"].as_u64()), (Some(0), Some(2)), "{report}");
    assert_eq!(report["reconstructed"], 0, "{report}");
    assert_eq!(message_files(&mail).len(), 2, "the re-run stored a message again");
}

#[tokio::test(flavor = "multi_thread")]
async fn calendar_and_contacts_folders_are_left_out_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    let destination = format!("maildir:{}", mail.display());
    let report_file = dir.path().join("report.json");
    let output = run(
        &dir.path().join("state"),
        &["copy", &pst("dist-list.pst"), &destination, "--report", report_file.to_str().unwrap()],
    );
    assert_eq!(code(&output), Some(EXIT_OK), "stderr: {}", stderr(&output));
    let warnings = [
        "PST folder Calendar (IPF.Appointment, 1 item) left out: it holds no mail",
        "PST folder Contacts (IPF.Contact, 2 items) left out: it holds no mail",
    ];
    let summary = stderr(&output);
    for warning in warnings {
        assert!(summary.lines().any(|l| l == format!("WARNING: {warning}")), "{warning:?} in:\n{summary}");
    }
    let report = read_report(&report_file);
    assert_eq!((report["copied"].as_u64(), report["failed"].as_u64()), (Some(0), Some(0)), "{report}");
    assert_eq!(report["warnings"], serde_json::json!(warnings), "{report}");
    let folders = report["folders"].as_array().unwrap();
    assert!(folders.iter().all(|f| f["folder"] != "Calendar" && f["folder"] != "Contacts"), "{report}");
    assert!(mail.is_dir(), "the mail folders are created");
    assert!(
        !mail.join(".Calendar").exists() && !mail.join(".Contacts").exists(),
        "a non-mail folder created"
    );
    assert!(message_files(&mail).is_empty());
    assert_eq!(total(&content(&destination).await), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn outlook_pst_to_dovecot_copies_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let user = format!("pst-{}-{}", std::process::id(), rand::random::<u32>());
    let password = env("MAILMOVE_TEST_PASSWORD");
    let passwords = [("MAILMOVE_DST_PASSWORD", password.as_str())];
    let destination = url(&user, false);
    let source = pst("outlook.pst");
    // Dovecot's Maildir++ storage takes no '.' in a folder name: the PST's empty `Content.Filter`
    // goes under another name (without the map that folder fails and the copy exits 3).
    let map = ["--map", "Content.Filter=Content Filter"];

    let copy = run_env(&state, &passwords, &[&["copy", &source, &destination, "--json"][..], &map].concat());
    assert_eq!(code(&copy), Some(EXIT_OK), "stderr: {}\nstdout: {}", stderr(&copy), stdout(&copy));
    let report = last_json(&copy);
    assert_eq!((report["copied"].as_u64(), report["failed"].as_u64()), (Some(2), Some(0)), "{report}");
    assert_eq!(report["reconstructed"], 2, "{report}");

    let verify =
        run_env(&state, &passwords, &[&["verify", &source, &destination, "--json"][..], &map].concat());
    assert_eq!(code(&verify), Some(EXIT_OK), "stderr: {}\nstdout: {}", stderr(&verify), stdout(&verify));
    assert_eq!(last_json(&verify)["identical"], true);

    let at_destination = content(&url(&user, true)).await;
    let counts = per_folder(&at_destination);
    assert_eq!(counts.get("INBOX"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("Recovered_Group2"), Some(&1), "{counts:?}");
    assert_eq!(total(&at_destination), 2, "{counts:?}");
    assert_eq!(at_destination, outlook_content_at_destination().await);

    let again = run_env(&state, &passwords, &[&["copy", &source, &destination, "--json"][..], &map].concat());
    assert_eq!(code(&again), Some(EXIT_OK), "stderr: {}", stderr(&again));
    assert_eq!(
        (last_json(&again)["copied"].as_u64(), last_json(&again)["skipped"].as_u64()),
        (Some(0), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inventory_and_plan_of_a_pst() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let source = pst("outlook.pst");

    let human = run(&state, &["inventory", &source]);
    assert_eq!(code(&human), Some(EXIT_OK), "stderr: {}", stderr(&human));
    let text = stdout(&human);
    assert!(text.contains("total: 2 messages, 0.1 MB in 10 folders"), "{text}");
    // folder, role (none for Recovered_Group2), messages, MB, oldest, newest.
    for (name, columns) in [("Inbox", "INBOX 1 0.1"), ("Recovered_Group2", "1 0.1 2007-04-29")] {
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(name)).expect(name);
        let rest: Vec<_> = line.split_whitespace().skip(1).take(3).collect();
        assert_eq!(rest.join(" "), columns, "{line}");
    }
    let json = run(&state, &["inventory", &source, "--json"]);
    assert_eq!(code(&json), Some(EXIT_OK), "stderr: {}", stderr(&json));
    let inventory = last_json(&json);
    assert_eq!(inventory["messages"], 2, "{inventory}");
    let folders = inventory["folders"].as_array().unwrap();
    assert_eq!(folders.len(), 10, "{inventory}");
    let count = |name: &str| folders.iter().find(|f| f["folder"] == name).map(|f| f["messages"].clone());
    assert_eq!((count("Inbox"), count("Recovered_Group2")), (Some(1.into()), Some(1.into())));
    assert_eq!(count("Sent Items"), Some(0.into()));

    let mail = dir.path().join("mail");
    let destination = format!("maildir:{}", mail.display());
    let plan = run(&state, &["plan", &source, &destination, "--json"]);
    assert_eq!(code(&plan), Some(EXIT_OK), "stderr: {}\nstdout: {}", stderr(&plan), stdout(&plan));
    let found = last_json(&plan);
    assert_eq!(found["plan"]["planned"], 2, "{found}");
    assert_eq!(found["problems"], serde_json::json!([]), "{found}");
    assert_eq!(folder(&found["plan"], "Inbox")["planned"], 1, "{found}");
    let dry = run(&state, &["copy", &source, &destination, "--dry-run", "--json"]);
    assert_eq!(code(&dry), Some(EXIT_OK), "stderr: {}", stderr(&dry));
    assert_eq!((last_json(&dry)["planned"].as_u64(), last_json(&dry)["copied"].as_u64()), (Some(2), Some(0)));
    assert!(message_files(&mail).is_empty(), "plan and --dry-run wrote messages");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pst_is_refused_as_a_destination() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/mail", dir.path().display());
    fill(&source, 3, 7, 10_000).await;
    let target = dir.path().join("x.pst");
    let output = run(&dir.path().join("state"), &["copy", &source, &format!("pst:{}", target.display())]);
    // A command that cannot work as written: the command line is wrong (2), as for an unknown
    // scheme, found before any work.
    assert_eq!(code(&output), Some(EXIT_USAGE), "{}", stderr(&output));
    assert!(stderr(&output).contains("pst can only be a source, not a destination"), "{}", stderr(&output));
    assert!(!target.exists(), "a file was created at the destination");
    assert_eq!(total(&content(&source).await), 3, "the source is untouched");
}

#[test]
fn a_file_that_is_not_a_pst_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.pst");
    std::fs::write(&text, "Just some notes, not an Outlook file.\n").unwrap();
    let mail = dir.path().join("mail");
    let report_file = dir.path().join("report.json");
    let output = run(
        &dir.path().join("state"),
        &[
            "copy",
            &format!("pst:{}", text.display()),
            &format!("maildir:{}", mail.display()),
            "--report",
            report_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&output), Some(EXIT_ERROR), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("not a PST file") && message.contains(&*text.to_string_lossy()), "{message}");
    let report = read_report(&report_file);
    assert_eq!((report["outcome"].as_str(), report["copied"].as_u64()), (Some("failed"), Some(0)));
    assert!(report["error"].as_str().unwrap().contains("not a PST file"), "{report}");
    assert!(!mail.exists(), "the destination was created for a source that cannot be read");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_pst_never_reports_a_message_that_did_not_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.pst");
    let bytes = std::fs::read(corpus("outlook.pst")).unwrap();
    std::fs::write(&truncated, &bytes[..100_000]).unwrap();
    let mail = dir.path().join("mail");
    let destination = format!("maildir:{}", mail.display());
    let report_file = dir.path().join("report.json");
    let output = run(
        &dir.path().join("state"),
        &[
            "copy",
            &format!("pst:{}", truncated.display()),
            &destination,
            "--json",
            "--report",
            report_file.to_str().unwrap(),
        ],
    );
    let status = code(&output).unwrap_or_else(|| panic!("killed by a signal: {}", stderr(&output)));
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    let report = read_report(&report_file);

    // The exit status follows the report (src/cli/mod.rs, run_exit_status).
    let exact = ["damaged", "altered"].iter().all(|k| report[*k].as_array().is_none_or(Vec::is_empty));
    let expected = match report["outcome"].as_str().unwrap() {
        "complete" if exact => EXIT_OK,
        "complete" => EXIT_DAMAGED,
        "completed_with_failures" => EXIT_INCOMPLETE,
        "failed" => EXIT_ERROR,
        other => panic!("outcome {other}: {report}"),
    };
    assert_eq!(status, expected, "{report}");
    if status == EXIT_OK {
        let folders = report["folders"].as_array().unwrap();
        let listed: u64 = folders.iter().map(|f| f["listed"].as_u64().unwrap()).sum();
        assert_eq!(report["copied"].as_u64(), Some(listed), "exit 0 without everything copied: {report}");
        assert_eq!(report["failures"], serde_json::json!([]), "{report}");
    }

    // Every message counted as copied is in the Maildir, folder by folder.
    let copied = report["copied"].as_u64().unwrap();
    assert!(copied <= 2, "{report}");
    assert_eq!(message_files(&mail).len() as u64, copied, "{report}");
    if copied > 0 {
        let stored = per_folder(&content(&destination).await);
        for entry in report["folders"].as_array().unwrap() {
            let (to, n) = (entry["destination"].as_str().unwrap(), entry["copied"].as_u64().unwrap());
            assert_eq!(stored.get(to).copied().unwrap_or(0) as u64, n, "{to}: {report}");
        }
    }
}
