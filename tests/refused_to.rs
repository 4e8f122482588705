//! Nothing refused is lost (issue 15): against a real Dovecot whose account refuses messages over
//! 1 MB (`quota_max_mail_size`, the quota plugin that `scripts/dovecot.sh` configures per user), a
//! 600-message Maildir with 15 larger ones ends with 585 at the destination and 15 in the side
//! mbox given by `--refused-to`, each named in the report; the run exits 0, and a re-run neither
//! copies nor stores anything again. Fails (never skips) without the server.

mod support;

use mailmove::core::{FolderPath, Message, MessageBody, MessageMeta};
use mailmove::registry::{open_sink, Credentials};
use support::*;

const SMALL: usize = 585;
const LARGE: usize = 15;

#[tokio::test(flavor = "multi_thread")]
async fn refused_messages_end_in_the_side_store_and_the_run_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/source", dir.path().display());
    let sink = open_sink(&source, &Credentials::default()).await.unwrap();
    let inbox = FolderPath::inbox();
    sink.create_folder(&inbox).await.unwrap();
    for index in 0..SMALL + LARGE {
        // Every 40th message is over the limit.
        let padding = if index % 40 == 39 { 1_100_000 } else { 200 };
        let body = format!("Subject: {index}\r\nMessage-ID: <r{index}@t>\r\n\r\n{}\r\n", "x".repeat(padding));
        let meta = MessageMeta::new(index.to_string(), body.len() as u64);
        sink.append(&inbox, &Message::new(meta, MessageBody::from(body.into_bytes()))).await.unwrap();
    }
    sink.flush(&inbox).await.unwrap();

    let user = dovecot_user_with("refused", "userdb_quota_max_mail_size=1M");
    let destination = url(&user, true);
    let side = dir.path().join("refused.mbox");
    let side_url = format!("mbox:{}", side.display());
    let state = dir.path().join("state");
    let args = ["copy", &source, &destination, "--refused-to", &side_url, "--json"];
    let output = run(&state, &args);
    assert_eq!(output.status.code(), Some(0), "stderr: {}\nstdout: {}", stderr(&output), stdout(&output));
    let report = last_json(&output);
    assert_eq!(report["copied"], SMALL as u64, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    let set_aside = report["set_aside"].as_array().unwrap();
    assert_eq!(set_aside.len(), LARGE, "{report}");
    for note in set_aside {
        let reason = note["reason"].as_str().unwrap();
        assert!(reason.contains("refused by the destination") && reason.contains("refused.mbox"), "{note}");
    }

    let at_destination = content(&url(&user, true)).await;
    assert_eq!(total(&at_destination), SMALL);
    let aside = content(&side_url).await;
    assert_eq!(total(&aside), LARGE);
    assert!(aside.keys().all(|(folder, _)| folder == "INBOX"), "{aside:?}");

    // Again: nothing to do, nothing stored aside twice.
    let again = run(&state, &args);
    assert_eq!(again.status.code(), Some(0), "stderr: {}", stderr(&again));
    let report = last_json(&again);
    assert_eq!((report["copied"].as_u64(), report["set_aside"].as_array().map(Vec::len)), (Some(0), Some(0)));
    assert_eq!(total(&content(&side_url).await), LARGE);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_account_and_a_job_file_take_the_side_store_too() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/source", dir.path().display());
    let sink = open_sink(&source, &Credentials::default()).await.unwrap();
    let inbox = FolderPath::inbox();
    sink.create_folder(&inbox).await.unwrap();
    for index in 0..6 {
        let padding = if index % 3 == 2 { 1_100_000 } else { 200 };
        let body = format!("Subject: {index}\r\nMessage-ID: <b{index}@t>\r\n\r\n{}\r\n", "x".repeat(padding));
        let meta = MessageMeta::new(index.to_string(), body.len() as u64);
        sink.append(&inbox, &Message::new(meta, MessageBody::from(body.into_bytes()))).await.unwrap();
    }
    sink.flush(&inbox).await.unwrap();

    // A batch account with a `refused_to` column.
    let user = dovecot_user_with("refused-batch", "userdb_quota_max_mail_size=1M");
    let side = format!("mbox:{}", dir.path().join("batch-refused.mbox").display());
    let accounts = dir.path().join("accounts.csv");
    std::fs::write(
        &accounts,
        format!(
            "name,source,destination,dst_password_env,refused_to\nana,{source},{},ANA_PW,{side}\n",
            url(&user, false)
        ),
    )
    .unwrap();
    let batch = mailmove()
        .env("MAILMOVE_STATE_DIR", dir.path().join("state"))
        .env("ANA_PW", env("MAILMOVE_TEST_PASSWORD"))
        .args(["batch", accounts.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(batch.status.code(), Some(0), "{}\n{}", stdout(&batch), stderr(&batch));
    assert_eq!(total(&content(&url(&user, true)).await), 4);
    assert_eq!(total(&content(&side).await), 2);

    // A job file with `refused_to`.
    let other = dovecot_user_with("refused-file", "userdb_quota_max_mail_size=1M");
    let side = format!("mbox:{}", dir.path().join("file-refused.mbox").display());
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "source = \"{source}\"\ndestination = \"{}\"\nrefused_to = \"{side}\"\nsync_deletions = true\n",
            url(&other, true)
        ),
    )
    .unwrap();
    let copy = run(&dir.path().join("state"), &["copy", "--config", job.to_str().unwrap(), "--json"]);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    assert_eq!(last_json(&copy)["set_aside"].as_array().map(Vec::len), Some(2));
    assert_eq!(total(&content(&side).await), 2);
}
