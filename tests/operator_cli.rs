//! The operator's view through the real binary: the HTML report of a copy, a failed copy and a
//! verification (`--html`, `mailmove report`), the tool's version and command in the report
//! without the password, completions and manual pages, the log levels and the protocol trace's
//! refusal of an unwritable file, and the exit statuses of the table in the README.

mod support;

use support::{fill, last_json, mailmove, run, stderr, stdout};

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_writes_its_report_as_json_and_as_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination) =
        (format!("maildir:{}/src", dir.path().display()), format!("maildir:{}/dst", dir.path().display()));
    fill(&source, 12, 5, 20_000).await;
    let (json, html) = (dir.path().join("copy.json"), dir.path().join("copy.html"));
    let output = run(
        &dir.path().join("state"),
        &[
            "copy",
            &source,
            &destination,
            "--report",
            json.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["copied"], 12);
    assert_eq!(report["tool"]["version"], env!("CARGO_PKG_VERSION"));
    let command: Vec<&str> =
        report["tool"]["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(&command[..2], ["mailmove", "copy"], "{command:?}");
    assert!(!report["timeline"].as_array().unwrap().is_empty(), "throughput over time is sampled");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(r#"data-figure="copied" data-value="12""#), "the page shows the report's count");
    assert!(
        !page.contains("<script") && !page.contains("http://") && !page.contains("https://"),
        "self-contained"
    );

    // The same page from the JSON file, by `mailmove report`.
    let rendered = dir.path().join("again.html");
    let output = mailmove()
        .args(["report", json.to_str().unwrap(), "-o", rendered.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let again = std::fs::read_to_string(&rendered).unwrap();
    assert!(again.contains(r#"data-figure="copied" data-value="12""#));

    // A verification, into a page too.
    let verify_html = dir.path().join("verify.html");
    let output = run(
        &dir.path().join("state"),
        &["verify", &source, &destination, "--html", verify_html.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(std::fs::read_to_string(&verify_html).unwrap().to_lowercase().contains("identical"));

    // Not a report: a usage problem named, exit 2... or 1 for a file that cannot be read.
    let bogus = dir.path().join("bogus.json");
    std::fs::write(&bogus, "{\"hello\": 1}").unwrap();
    let output = mailmove()
        .args(["report", bogus.to_str().unwrap(), "-o", rendered.to_str().unwrap()])
        .output()
        .unwrap();
    assert_ne!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn a_failed_copy_still_writes_its_page_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let source = format!("imap://ana:hunter2-secret@127.0.0.1:{port}/?tls=none&timeout=2");
    let (json, html) = (dir.path().join("failed.json"), dir.path().join("failed.html"));
    let destination = format!("maildir:{}/dst", dir.path().display());
    let output = run(
        &dir.path().join("state"),
        &[
            "copy",
            &source,
            &destination,
            "--report",
            json.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let page = std::fs::read_to_string(&html).expect("a page even for a failed run");
    let report = std::fs::read_to_string(&json).unwrap();
    for text in [&page, &report, &stderr(&output)] {
        assert!(!text.contains("hunter2-secret"), "the password leaked");
    }
    assert!(page.to_lowercase().contains("failed"), "the verdict says failed");
}

#[test]
fn completions_and_manual_pages() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = mailmove().args(["completions", shell]).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        assert!(script.contains("inventory") && script.contains("verify"), "{shell}");
    }
    let output = mailmove().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "an unknown shell is a usage error");

    let output = mailmove().arg("man").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains(".TH mailmove"), "{}", stdout(&output));
    let dir = tempfile::tempdir().unwrap();
    let output = mailmove().args(["man", "--dir", dir.path().to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    for page in ["mailmove.1", "mailmove-copy.1", "mailmove-verify.1", "mailmove-report.1"] {
        assert!(dir.path().join(page).exists(), "{page}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn log_levels_and_an_unwritable_trace() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/src", dir.path().display());
    fill(&source, 3, 9, 5_000).await;
    let inventory = |extra: &[&str]| {
        let mut args = vec!["inventory", source.as_str()];
        args.extend_from_slice(extra);
        mailmove().args(&args).env_remove("MAILMOVE_LOG").output().unwrap()
    };
    let quiet = inventory(&[]);
    assert_eq!(quiet.status.code(), Some(0));
    assert!(!stderr(&quiet).contains("TRACE"), "{}", stderr(&quiet));
    let loud = inventory(&["-vvv"]);
    assert_eq!(loud.status.code(), Some(0), "{}", stderr(&loud));
    assert!(stderr(&loud).len() >= stderr(&quiet).len(), "-vvv logs at least what the default does");

    let unwritable = dir.path().join("no/such/dir/trace.txt");
    let output = inventory(&["--trace-protocol", unwritable.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--trace-protocol"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_json_report_and_the_exit_status_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination) =
        (format!("maildir:{}/src", dir.path().display()), format!("maildir:{}/dst", dir.path().display()));
    fill(&source, 4, 3, 5_000).await;
    let output = run(&dir.path().join("state"), &["copy", &source, &destination, "--json"]);
    assert_eq!((output.status.code(), last_json(&output)["outcome"].as_str()), (Some(0), Some("complete")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_writes_one_page_for_all_its_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = String::from("name,source,destination\n");
    for (name, count) in [("ana", 3), ("bob", 5)] {
        let source = format!("maildir:{}/{name}-src", dir.path().display());
        fill(&source, count, count, 5_000).await;
        rows.push_str(&format!("{name},{source},maildir:{}/{name}-dst\n", dir.path().display()));
    }
    let accounts = dir.path().join("accounts.csv");
    std::fs::write(&accounts, rows).unwrap();
    let html = dir.path().join("batch.html");
    let output = run(
        &dir.path().join("state"),
        &["batch", accounts.to_str().unwrap(), "--html", html.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let page = std::fs::read_to_string(&html).unwrap();
    for figure in [r#"data-figure="copied" data-value="3""#, r#"data-figure="copied" data-value="5""#] {
        assert!(page.contains(figure), "each account's section: {figure}");
    }
    assert!(page.contains("ana") && page.contains("bob"));
}

/// `--trace-protocol` reaches every connection of the command (the CLI installs it), and the
/// file holds the conversation without the password or a byte of the messages.
#[tokio::test(flavor = "multi_thread")]
async fn the_protocol_trace_of_a_copy_into_dovecot_holds_no_secret_and_no_body() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/src", dir.path().display());
    fill(&source, 4, 21, 8_000).await;
    let user = support::dovecot_user_with("trace", "");
    let trace = dir.path().join("trace.txt");
    let output = support::mailmove()
        .env("MAILMOVE_STATE_DIR", dir.path().join("state"))
        .env("MAILMOVE_DST_PASSWORD", support::env("MAILMOVE_TEST_PASSWORD"))
        .args(["copy", &source, &support::url(&user, false), "--trace-protocol", trace.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.contains(" C: ") && text.contains(" S: "), "{text}");
    assert!(text.contains("APPEND") && text.contains("bytes redacted]"), "{text}");
    let password = support::env("MAILMOVE_TEST_PASSWORD");
    assert!(!text.contains(&password), "the password is in the trace");
    // Every message's Message-ID and Subject travel only inside APPEND literals.
    let source_store = mailmove::registry::open_source(&source, &Default::default()).await.unwrap();
    let bodies = support::content_of(source_store.as_ref()).await;
    assert_eq!(support::total(&bodies), 4);
    let sample = std::fs::read_dir(dir.path().join("src/cur")).unwrap().next().unwrap().unwrap().path();
    let message = std::fs::read_to_string(sample).unwrap();
    let subject = message.lines().find(|line| line.starts_with("Subject:")).expect("a Subject line");
    assert!(!text.contains(subject), "a message's header line is in the trace: {subject}");
}
