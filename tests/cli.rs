//! The `mailmove` command end to end on file backends: JSON report, resume, dry run, filters,
//! folder mapping, job files, inventory, exit statuses, and secrets kept out of output.

mod support;

use support::*;

#[tokio::test]
async fn copy_reports_json_and_a_rerun_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/src", dir.path().display());
    let destination = format!("mbox:{}/dst", dir.path().display());
    fill(&source, 120, 3, 300_000).await;

    let first = run(dir.path(), &["copy", &source, &destination, "--json"]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let report = last_json(&first);
    assert_eq!(report["copied"], 120);
    assert_eq!(report["failed"], 0);
    assert!(report["bytes_copied"].as_u64().unwrap() > 0);
    // Every other line is an event.
    let events = stdout(&first).lines().filter(|l| l.contains("\"event\":\"message_copied\"")).count();
    assert_eq!(events, 120);

    let second = run(dir.path(), &["copy", &source, &destination, "--json"]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(last_json(&second)["copied"], 0);
    assert_eq!(content(&source).await, content(&destination).await);
}

#[tokio::test]
async fn dry_run_plans_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/src", dir.path().display());
    let destination_path = dir.path().join("dst");
    fill(&source, 40, 4, 100_000).await;
    let output = run(
        dir.path(),
        &["copy", "--dry-run", "--json", &source, &format!("maildir:{}", destination_path.display())],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = last_json(&output);
    assert_eq!((report["planned"].as_u64(), report["copied"].as_u64()), (Some(40), Some(0)));
    assert!(report["planned_bytes"].as_u64().unwrap() > 0);
    let written = std::fs::read_dir(&destination_path).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(written, 0, "a dry run must not write into the destination");
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sqlite"))
            .count(),
        0
    );
}

#[test]
fn unknown_schemes_and_bad_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["copy", "ftp://ana:hunter2@host/", "maildir:/tmp/x"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    for scheme in ["maildir", "mbox", "imap", "imaps", "pop3", "pop3s"] {
        assert!(text.contains(scheme), "{text}");
    }
    assert!(!text.contains("hunter2"), "{text}");
    let output = run(dir.path(), &["copy", "maildir:/a", "maildir:/b", "--max-size", "12 parsecs"]);
    assert_eq!(output.status.code(), Some(2));
    let output = run(dir.path(), &["copy", "--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2));
    let output = run(dir.path(), &["copy", "maildir:/a", "maildir:/b", "--reconcile", "by-guess"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("identity or content"), "{}", stderr(&output));
    let output = run(dir.path(), &["copy", "pop3://ana@127.0.0.1:1/", "pop3://ana@127.0.0.1:1/"]);
    assert_ne!(output.status.code(), Some(0), "POP3 is not a destination");
}

#[tokio::test]
async fn delete_after_is_refused_for_anything_but_a_pop3_source() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/src", dir.path().display());
    let destination = format!("maildir:{}/dst", dir.path().display());
    fill(&source, 5, 3, 10_000).await;
    let output = run(dir.path(), &["copy", &source, &destination, "--delete-after"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--delete-after only applies to a pop3:// or pop3s:// source"),
        "{}",
        stderr(&output)
    );
    assert_eq!(total(&content(&source).await), 5, "the source is untouched");
    // A dry run deletes nothing, so it has nothing to refuse.
    let output = run(dir.path(), &["copy", &source, &destination, "--delete-after", "--dry-run"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[tokio::test]
async fn filters_and_folder_mapping_select_what_travels() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/src", dir.path().display());
    let destination = format!("maildir:{}/dst", dir.path().display());
    fill(&source, 200, 5, 400_000).await;
    let output = run(
        dir.path(),
        &[
            "copy",
            &source,
            &destination,
            "--json",
            "--include",
            "Archive/**",
            "--include",
            "INBOX",
            "--exclude",
            "Archive/2019",
            "--map",
            "Archive=Old/Archive",
            "--max-size",
            "100KB",
            "--since",
            "2012-01-01",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = last_json(&output);
    let mut folders: Vec<String> = report["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["destination"].as_str().unwrap().to_string())
        .collect();
    folders.sort();
    assert_eq!(folders, vec!["INBOX".to_string(), "Old/Archive/2020".to_string()]);
    let copied = content(&destination).await;
    assert!(
        copied.keys().all(|(folder, _)| folder == "INBOX" || folder == "Old/Archive/2020"),
        "{:?}",
        copied.keys().map(|k| &k.0).collect::<Vec<_>>()
    );
    assert!(report["filtered"].as_u64().unwrap() > 0);
    assert_eq!(report["copied"].as_u64().unwrap() as usize, total(&copied));
}

#[tokio::test]
async fn a_job_file_is_equivalent_to_flags() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/src", dir.path().display());
    fill(&source, 80, 6, 200_000).await;
    let with_flags = run(
        dir.path(),
        &[
            "copy",
            &source,
            &format!("maildir:{}/a", dir.path().display()),
            "--json",
            "--exclude",
            "Sent",
            "--map",
            "INBOX/x=y",
            "--max-size",
            "50KB",
        ],
    );
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!("source = \"{source}\"\ndestination = \"maildir:{}/b\"\nexclude = [\"Sent\"]\nmap = [\"INBOX/x=y\"]\nmax_size = \"50KB\"\n", dir.path().display()),
    )
    .unwrap();
    let with_file = run(dir.path(), &["copy", "--config", job.to_str().unwrap(), "--json"]);
    assert_eq!(with_flags.status.code(), Some(0), "{}", stderr(&with_flags));
    assert_eq!(with_file.status.code(), Some(0), "{}", stderr(&with_file));
    let (a, b) = (last_json(&with_flags), last_json(&with_file));
    for key in ["copied", "filtered", "skipped", "failed", "bytes_copied"] {
        assert_eq!(a[key], b[key], "{key}");
    }
    assert_eq!(
        content(&format!("maildir:{}/a", dir.path().display())).await,
        content(&format!("maildir:{}/b", dir.path().display())).await
    );
    std::fs::write(&job, "sauce = \"typo\"\n").unwrap();
    let typo = run(dir.path(), &["copy", "--config", job.to_str().unwrap()]);
    assert_eq!(typo.status.code(), Some(2), "{}", stderr(&typo));
}

#[tokio::test]
async fn inventory_figures_match_what_the_copy_moves() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/src", dir.path().display());
    fill(&source, 150, 7, 3_000_000).await;
    let output = run(dir.path(), &["inventory", &source, "--json", "--limit", "1MB"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let inventory = last_json(&output);
    let copy = run(dir.path(), &["copy", &source, &format!("mbox:{}/dst", dir.path().display()), "--json"]);
    let report = last_json(&copy);
    assert_eq!(inventory["messages"], report["copied"]);
    assert_eq!(inventory["bytes"], report["bytes_copied"]);
    let over = inventory["over_limit"].as_array().unwrap();
    assert!(over.iter().all(|m| m["size"].as_u64().unwrap() > 1_000_000));
    let human = run(dir.path(), &["inventory", &source]);
    assert!(stdout(&human).contains("total: 150 messages"), "{}", stdout(&human));
}

#[test]
fn inventory_names_the_damage_it_read() {
    // The audit before a migration is where damage is wanted first: an mbox whose second message
    // carries an unquoted separator-like line and whose last one is cut off mid-line.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.mbox");
    std::fs::write(
        &path,
        "From a@example.org Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n\n\
         From b@example.org Mon Jan  1 00:00:00 2024\nSubject: two\n\ntext\n\
         From c@example.org Mon Jan  1 00:00:00 2024\nmore\n\n\
         From d@example.org Mon Jan  1 00:00:00 2024\nSubject: three\n\ncut off",
    )
    .unwrap();
    let source = format!("mbox:{}", path.display());
    let json = run(dir.path(), &["inventory", &source, "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let inventory = last_json(&json);
    let warnings: Vec<&str> =
        inventory["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert!(warnings.iter().any(|w| w.contains("look like a separator")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("middle of a line")), "{warnings:?}");
    let human = run(dir.path(), &["inventory", &source]);
    assert!(stdout(&human).contains("warning: "), "{}", stdout(&human));
    assert!(stdout(&human).contains("middle of a line"), "{}", stdout(&human));
}

#[tokio::test]
async fn verify_says_identical_then_finds_a_missing_message() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("mbox:{}/src", dir.path().display());
    let destination_path = dir.path().join("dst");
    let destination = format!("maildir:{}", destination_path.display());
    fill(&source, 50, 8, 100_000).await;
    let copy = run(dir.path(), &["copy", &source, &destination, "--quiet"]);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));

    let same = run(dir.path(), &["verify", &source, &destination, "--json"]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    let report = last_json(&same);
    assert_eq!(report["identical"], true);
    for key in ["folders", "missing", "extra", "changed", "duplicates"] {
        assert!(report.get(key).is_some(), "report lacks {key}: {report}");
    }

    // Remove one delivered message from the Maildir: verify must name it.
    let victim = walk(&destination_path)
        .into_iter()
        .find(|p| p.parent().is_some_and(|d| d.ends_with("cur")))
        .expect("a message file");
    std::fs::remove_file(&victim).unwrap();
    let differs = run(dir.path(), &["verify", &source, &destination, "--json"]);
    assert_eq!(differs.status.code(), Some(3), "{}", stderr(&differs));
    let report = last_json(&differs);
    assert_eq!(report["identical"], false);
    assert_eq!(report["missing"].as_array().unwrap().len(), 1, "{report}");
    let human = run(dir.path(), &["verify", &source, &destination]);
    assert_eq!(human.status.code(), Some(3));
    assert!(stderr(&human).to_lowercase().contains("missing"), "{}", stderr(&human));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// An mbox tree whose folder and file names carry terminal escape sequences, as a hostile archive
/// (or server) could: a folder `Evil ESC[31m Red BEL`, and a file that is no mbox, which the source
/// names in a warning.
fn hostile_mbox_tree(root: &std::path::Path) {
    std::fs::create_dir_all(root).unwrap();
    let mbox = |subject: &str| {
        format!(
            "From ana@example.org Mon Jan  1 00:00:00 2024\nSubject: {subject}\nMessage-ID: <{subject}@example.org>\n\nbody\n\n"
        )
    };
    std::fs::write(root.join("INBOX"), mbox("plain")).unwrap();
    std::fs::write(root.join("Evil\x1b[31mRed\x07"), mbox("one") + &mbox("two")).unwrap();
    std::fs::write(root.join("Junk\x1b]0;owned\x07"), "not a mailbox\n").unwrap();
}

/// No raw ESC or BEL anywhere in what was printed.
fn assert_no_raw_controls(what: &str, output: &std::process::Output) {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        assert!(
            !bytes.iter().any(|b| *b == 0x1b || *b == 0x07),
            "{what}: raw control byte on {stream}: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn control_bytes_in_folder_names_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("mbox:{}/src", dir.path().display());
    let destination = format!("maildir:{}/dst", dir.path().display());
    hostile_mbox_tree(&dir.path().join("src"));
    let escaped = "Evil\\x1b[31mRed\\x07";

    let inventory = run(dir.path(), &["inventory", &source]);
    assert_eq!(inventory.status.code(), Some(0), "{}", stderr(&inventory));
    assert_no_raw_controls("inventory", &inventory);
    assert!(stdout(&inventory).contains(escaped), "{}", stdout(&inventory));
    // The audit names the file that is no mailbox, escaped, as the copy does.
    assert!(stdout(&inventory).contains("Junk\\x1b]0;owned\\x07"), "{}", stdout(&inventory));

    let copy = run(dir.path(), &["copy", &source, &destination]);
    // Copied (0), or refused by a backend that cannot represent such a name (3): either way the
    // name is shown, escaped, in the table or in a FAILED line.
    assert!(matches!(copy.status.code(), Some(0 | 3)), "{:?}: {}", copy.status, stderr(&copy));
    assert_no_raw_controls("copy", &copy);
    let summary = stderr(&copy);
    assert!(summary.contains(escaped), "{summary}");
    assert!(summary.contains("Junk\\x1b]0;owned\\x07"), "the warning names the file: {summary}");

    let verify = run(dir.path(), &["verify", &source, &destination]);
    assert!(verify.status.code().is_some(), "{:?}", verify.status);
    assert_no_raw_controls("verify", &verify);
    assert!(stderr(&verify).contains(escaped), "{}", stderr(&verify));

    // The JSON stays exact: serde writes the ESC as \u001b, which reads back as the raw name.
    let json = run(dir.path(), &["inventory", &source, "--json"]);
    assert_no_raw_controls("inventory --json", &json);
    let folders = last_json(&json)["folders"].as_array().unwrap().clone();
    assert!(folders.iter().any(|f| f["folder"] == "Evil\x1b[31mRed\x07"), "{folders:?}");
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// Reads a report file and checks it describes a failed run without the password.
fn failed_report(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert!(!text.contains("hunter2"), "a secret in the report: {text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["outcome"], "failed", "{report}");
    assert!(!report["error"].as_str().unwrap_or_default().is_empty(), "{report}");
    report
}

#[test]
fn a_fatal_error_still_writes_the_report_file() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let destination = format!("maildir:{}/dst", dir.path().display());
    // A report left by an earlier, successful run must not survive a failed one.
    std::fs::write(&report, "{\"outcome\": \"complete\"}\n").unwrap();
    let port = closed_port();
    let unreachable = format!("imap://ana:hunter2@127.0.0.1:{port}/?tls=none");
    let output = run(dir.path(), &["copy", &unreachable, &destination, "--report", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!stderr(&output).contains("hunter2"), "{}", stderr(&output));
    let written = failed_report(&report);
    assert_eq!(written["source"], format!("imap://ana@127.0.0.1:{port}/?tls=none"));

    // A source that does not exist, with verify this time.
    std::fs::remove_file(&report).unwrap();
    let missing = format!("maildir:{}/no/such/maildir", dir.path().display());
    let output = run(dir.path(), &["verify", &missing, &destination, "--report", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let written = failed_report(&report);
    assert_eq!((written["identical"].as_bool(), written["complete"].as_bool()), (Some(false), Some(false)));

    // A usage error is the command line's: no report.
    std::fs::remove_file(&report).unwrap();
    let output = run(dir.path(), &["copy", "ftp://h/", &destination, "--report", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(!report.exists());
}

#[test]
fn a_failing_batch_account_gets_a_failed_report() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let accounts = dir.path().join("accounts.csv");
    std::fs::write(
        &accounts,
        format!(
            "name,source,destination\nghost,imap://ana:hunter2@127.0.0.1:{}/?tls=none,maildir:{}/dst\n",
            closed_port(),
            dir.path().display()
        ),
    )
    .unwrap();
    let output =
        run(dir.path(), &["batch", accounts.to_str().unwrap(), "--report-dir", reports.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    failed_report(&reports.join("ghost.json"));
}
