//! The `mailmove` command against the throw-away Dovecot started by `scripts/test.sh`: IMAP→IMAP
//! with a re-run, a wrong password, secrets kept out of every output and of the state file,
//! a batch with one bad account, and POP3 `--delete-after`.

mod support;

use std::path::Path;

use support::*;

struct Server {
    imap_port: String,
    pop3_port: String,
    ca: String,
    password: String,
}

fn server() -> Server {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the test suite through scripts/test.sh, which starts Dovecot")
        })
    };
    Server {
        imap_port: var("MAILMOVE_TEST_IMAP_PORT"),
        pop3_port: var("MAILMOVE_TEST_POP3_PORT"),
        ca: var("MAILMOVE_TEST_CA"),
        password: var("MAILMOVE_TEST_PASSWORD"),
    }
}

fn unique_user(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand::random::<u32>())
}

impl Server {
    fn imap(&self, user: &str) -> String {
        format!("imap://{user}@127.0.0.1:{}/?tls=starttls&ca={}", self.imap_port, self.ca)
    }
    fn pop3(&self, user: &str) -> String {
        format!("pop3://{user}@127.0.0.1:{}/?tls=stls&ca={}", self.pop3_port, self.ca)
    }
}

fn run_with(state: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut command = mailmove();
    command.env("MAILMOVE_STATE_DIR", state);
    for (key, value) in env {
        command.env(key, value);
    }
    command.args(args).output().expect("run mailmove")
}

/// Fills an IMAP account through the CLI from a generated Maildir.
async fn seed_imap(server: &Server, dir: &Path, user: &str, count: u64) -> String {
    let maildir = format!("maildir:{}/seed-{user}", dir.display());
    fill(&maildir, count, 21, 300_000).await;
    let output = run_with(
        dir,
        &[("MAILMOVE_DST_PASSWORD", &server.password)],
        &["copy", &maildir, &server.imap(user), "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "seeding {user}: {}", stderr(&output));
    maildir
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_to_imap_from_the_command_line_then_a_rerun_copies_nothing() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (unique_user("cli-src"), unique_user("cli-dst"));
    seed_imap(&server, dir.path(), &from, 60).await;
    let env = [
        ("MAILMOVE_SRC_PASSWORD", server.password.as_str()),
        ("MAILMOVE_DST_PASSWORD", server.password.as_str()),
    ];
    let report_file = dir.path().join("report.json");
    let first = run_with(
        dir.path(),
        &env,
        &[
            "copy",
            &server.imap(&from),
            &server.imap(&to),
            "--json",
            "--report",
            report_file.to_str().unwrap(),
        ],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(last_json(&first)["copied"], 60);
    let second = run_with(dir.path(), &env, &["copy", &server.imap(&from), &server.imap(&to), "--json"]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(last_json(&second)["copied"], 0);

    // Byte-exact, folder by folder.
    let credentials = mailmove::registry::Credentials {
        password: Some(mailmove::core::Secret::new(server.password.clone())),
        token: None,
        token_provider: None,
    };
    let a = mailmove::registry::open_source(&server.imap(&from), &credentials).await.unwrap();
    let b = mailmove::registry::open_source(&server.imap(&to), &credentials).await.unwrap();
    assert_eq!(content_of(a.as_ref()).await, content_of(b.as_ref()).await);

    // The password is nowhere: not in output, report, or checkpoint.
    let mut haystack = stdout(&first) + &stderr(&first) + &stdout(&second) + &stderr(&second);
    haystack += &std::fs::read_to_string(&report_file).unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains(".sqlite") {
            haystack += &String::from_utf8_lossy(&std::fs::read(&path).unwrap());
        }
    }
    assert!(!haystack.contains(&server.password), "the password leaked into output, report or state");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_a_clear_error_with_exit_status_1_and_nothing_written() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/src", dir.path().display());
    fill(&source, 5, 22, 50_000).await;
    let wrong = "not-the-password-4711";
    let output = run_with(
        dir.path(),
        &[("MAILMOVE_DST_PASSWORD", wrong)],
        &["copy", &source, &server.imap(&unique_user("wrong")), "--json"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.to_lowercase().contains("auth"), "not a clear authentication error: {text}");
    assert!(!text.contains(wrong) && !stdout(&output).contains(wrong), "the password leaked: {text}");
    // A password in the URL (percent-encoded) never shows either.
    let url = format!(
        "imap://someone:{}@127.0.0.1:{}/?tls=starttls&ca={}",
        "s%40cret-xyz", server.imap_port, server.ca
    );
    let output = run_with(dir.path(), &[], &["copy", &source, &url]);
    assert_eq!(output.status.code(), Some(1));
    let all = stdout(&output) + &stderr(&output);
    assert!(!all.contains("s@cret-xyz") && !all.contains("s%40cret-xyz"), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_three_accounts_with_one_wrong_password() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let mut rows = String::from("name,source,destination,dst_password_env\n");
    for (index, env) in ["GOOD_PASSWORD", "GOOD_PASSWORD", "BAD_PASSWORD"].iter().enumerate() {
        let source = format!("maildir:{}/src{index}", dir.path().display());
        fill(&source, 10 + index as u64, 30 + index as u64, 80_000).await;
        rows.push_str(&format!("acct{index},{source},{},{env}\n", server.imap(&unique_user("batch"))));
    }
    let accounts = dir.path().join("accounts.csv");
    std::fs::write(&accounts, rows).unwrap();
    let reports = dir.path().join("reports");
    let output = run_with(
        dir.path(),
        &[("GOOD_PASSWORD", &server.password), ("BAD_PASSWORD", "wrong")],
        &[
            "batch",
            accounts.to_str().unwrap(),
            "--parallel",
            "3",
            "--state-dir",
            dir.path().join("states").to_str().unwrap(),
            "--report-dir",
            reports.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let summary = last_json(&output);
    assert_eq!((summary["complete"].as_u64(), summary["incomplete"].as_u64()), (Some(2), Some(1)));
    let rows = summary["rows"].as_array().unwrap();
    assert_eq!(rows[0]["copied"], 10);
    assert_eq!(rows[1]["copied"], 11);
    assert_eq!(rows[2]["status"], "error");
    assert!(rows[2]["error"].as_str().unwrap().to_lowercase().contains("auth"), "{}", rows[2]);
    assert!(reports.join("acct0.json").exists() && reports.join("summary.json").exists());
    // Resumable: running the batch again copies nothing for the good accounts.
    let again = run_with(
        dir.path(),
        &[("GOOD_PASSWORD", &server.password), ("BAD_PASSWORD", &server.password)],
        &[
            "batch",
            accounts.to_str().unwrap(),
            "--state-dir",
            dir.path().join("states").to_str().unwrap(),
            "--json",
        ],
    );
    let summary = last_json(&again);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let copied: Vec<u64> =
        summary["rows"].as_array().unwrap().iter().map(|r| r["copied"].as_u64().unwrap()).collect();
    assert_eq!(copied, vec![0, 0, 12]);
}

#[tokio::test(flavor = "multi_thread")]
async fn pop3_delete_after_removes_only_what_arrived() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let user = unique_user("pop-del");
    // Seed the account's INBOX over IMAP (the synthetic mailbox puts 40 % in INBOX).
    let seeded = format!("maildir:{}/inbox-only", dir.path().display());
    fill(&seeded, 25, 41, 60_000).await;
    let output = run_with(
        dir.path(),
        &[("MAILMOVE_DST_PASSWORD", &server.password)],
        &["copy", &seeded, &server.imap(&user), "--include", "INBOX", "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let in_inbox = last_json(&output)["copied"].as_u64().unwrap();
    assert!(in_inbox > 0);

    let destination = format!("maildir:{}/rescued", dir.path().display());
    let env = [("MAILMOVE_SRC_PASSWORD", server.password.as_str())];
    let copy =
        run_with(dir.path(), &env, &["copy", &server.pop3(&user), &destination, "--json", "--delete-after"]);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    assert_eq!(last_json(&copy)["copied"].as_u64(), Some(in_inbox));
    assert!(stdout(&copy).contains("deleted_from_source"), "{}", stdout(&copy));
    let rescued = content(&destination).await;
    assert_eq!(total(&rescued) as u64, in_inbox);
    let credentials = mailmove::registry::Credentials {
        password: Some(mailmove::core::Secret::new(server.password.clone())),
        token: None,
        token_provider: None,
    };
    let pop3 = mailmove::registry::open_source(&server.pop3(&user), &credentials).await.unwrap();
    assert_eq!(total(&content_of(pop3.as_ref()).await), 0, "the POP3 server still holds messages");
    // Without --delete-after nothing is ever deleted.
    let keep = unique_user("pop-keep");
    let output = run_with(
        dir.path(),
        &[("MAILMOVE_DST_PASSWORD", &server.password)],
        &["copy", &seeded, &server.imap(&keep), "--include", "INBOX"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let copy = run_with(
        dir.path(),
        &env,
        &["copy", &server.pop3(&keep), &format!("maildir:{}/kept", dir.path().display()), "--json"],
    );
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    let pop3 = mailmove::registry::open_source(&server.pop3(&keep), &credentials).await.unwrap();
    assert_eq!(total(&content_of(pop3.as_ref()).await) as u64, in_inbox);
}
