//! The provider features that are not Gmail's own, against a real Dovecot (issue 15): the daily
//! upload allowance pauses a copy into any IMAP server and is honoured across runs, and the
//! opt-in `long-lines-encoded` transform stores re-encoded parts that the server keeps and
//! `verify` recognises. Fails (never skips) without the server of `scripts/test.sh`.

mod support;

use mailmove::core::{FolderPath, Message, MessageBody, MessageMeta};
use mailmove::registry::{open_sink, Credentials};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_upload_allowance_and_the_long_lines_transform_against_dovecot() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/source", dir.path().display());
    let sink = open_sink(&source, &Credentials::default()).await.unwrap();
    let inbox = FolderPath::inbox();
    sink.create_folder(&inbox).await.unwrap();
    for body in [
        format!(
            "Subject: long\r\nMessage-ID: <long@t>\r\nContent-Type: text/html\r\n\r\n<p>{}</p>\r\n",
            "word ".repeat(3_000)
        ),
        "Subject: a\r\nMessage-ID: <a@t>\r\n\r\nshort\r\n".to_string(),
        "Subject: b\r\nMessage-ID: <b@t>\r\n\r\nshort\r\n".to_string(),
    ] {
        let meta = MessageMeta::new("1", body.len() as u64);
        sink.append(&inbox, &Message::new(meta, MessageBody::from(body.into_bytes()))).await.unwrap();
    }
    sink.flush(&inbox).await.unwrap();
    let user = dovecot_user_with("allowance", "userdb_quota_rule=*:storage=100M");
    let destination = url(&user, true);
    let state = dir.path().join("state");
    let long_lines = "--encode-long-lines=9900";

    // An allowance of one byte: a fresh window takes one message, whatever its size; then pause.
    let first = run(&state, &["copy", &source, &destination, long_lines, "--daily-upload", "1", "--json"]);
    assert_eq!(first.status.code(), Some(6), "{}", stderr(&first));
    let report = last_json(&first);
    assert_eq!(
        (report["outcome"].as_str(), report["copied"].as_u64()),
        (Some("paused"), Some(1)),
        "{report}"
    );
    assert!(report["paused_reason"].as_str().unwrap().contains("run again after"), "{report}");
    let again = run(&state, &["copy", &source, &destination, long_lines, "--daily-upload", "1", "--json"]);
    assert_eq!(last_json(&again)["copied"], 0, "the same day, nothing more: {}", stderr(&again));
    let rest = run(&state, &["copy", &source, &destination, long_lines, "--daily-upload", "none", "--json"]);
    assert_eq!(rest.status.code(), Some(0), "{}", stderr(&rest));
    let transformed =
        |output: &std::process::Output| last_json(output)["transformed"].as_array().unwrap().len();
    assert_eq!(last_json(&rest)["copied"], 2);
    assert_eq!(transformed(&first) + transformed(&rest), 1, "the long message, named");
    assert_eq!(total(&content(&destination).await), 3);

    // Dovecot kept the re-encoded form; verify told of the transform finds the copy exact.
    let verify = run(&state, &["verify", &source, &destination, long_lines]);
    assert_eq!(verify.status.code(), Some(0), "{}\n{}", stdout(&verify), stderr(&verify));
    let without = run(&state, &["verify", &source, &destination]);
    assert_eq!(without.status.code(), Some(3), "{}", stderr(&without));
}
