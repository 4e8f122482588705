//! The preflight against a real Dovecot with quotas (issue 15): `mailmove plan` of a 45 MB
//! Maildir into an account with a 20 MB quota exits 5 and names the shortfall, before anything is
//! written; the copy it warned of indeed pauses on the quota; into a 100 MB account the plan says
//! the copy can succeed (exit 0). Against Cyrus, whose hierarchy delimiter is `.`, the plan names
//! the folder whose name holds a dot before the copy fails on it. Fails (never skips) without the
//! servers of `scripts/test.sh`.

mod support;

use mailmove::core::{FolderPath, Message, MessageBody, MessageMeta};
use mailmove::registry::{open_sink, Credentials};
use support::*;

const MESSAGES: usize = 45;

#[tokio::test(flavor = "multi_thread")]
async fn plan_names_a_quota_shortfall_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/source", dir.path().display());
    let sink = open_sink(&source, &Credentials::default()).await.unwrap();
    let inbox = FolderPath::inbox();
    sink.create_folder(&inbox).await.unwrap();
    for index in 0..MESSAGES {
        let body = format!("Subject: {index}\r\n\r\n{}\r\n", "y".repeat(1_000_000));
        let meta = MessageMeta::new(index.to_string(), body.len() as u64);
        sink.append(&inbox, &Message::new(meta, MessageBody::from(body.into_bytes()))).await.unwrap();
    }
    sink.flush(&inbox).await.unwrap();
    let state = dir.path().join("state");

    let small = dovecot_user_with("plan-small", "userdb_quota_rule=*:storage=20M");
    let plan = run(&state, &["plan", &source, &url(&small, true), "--json"]);
    assert_eq!(plan.status.code(), Some(5), "stderr: {}\nstdout: {}", stderr(&plan), stdout(&plan));
    let found = last_json(&plan);
    assert_eq!(found["plan"]["planned"], MESSAGES as u64, "{found}");
    assert_eq!(found["quota"]["limit_bytes"], 20 * 1024 * 1024, "{found}");
    let problems = found["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{found}");
    assert!(problems[0].as_str().unwrap().contains("MB free"), "{found}");
    assert!(content(&url(&small, true)).await.is_empty(), "the plan wrote nothing");

    // What it warned of: the copy pauses on the quota (exit 6), part of the way.
    let copied = run(&state, &["copy", &source, &url(&small, true), "--json"]);
    assert_eq!(copied.status.code(), Some(6), "stderr: {}", stderr(&copied));
    assert_eq!(last_json(&copied)["outcome"], "paused");

    let large = dovecot_user_with("plan-large", "userdb_quota_rule=*:storage=100M");
    let plan = run(&state, &["plan", &source, &url(&large, true)]);
    assert_eq!(plan.status.code(), Some(0), "stderr: {}", stderr(&plan));
    assert!(stderr(&plan).contains("the copy can succeed as planned"), "{}", stderr(&plan));
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_names_a_folder_name_holding_the_destinations_hierarchy_delimiter() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}/source", dir.path().display());
    let sink = open_sink(&source, &Credentials::default()).await.unwrap();
    for name in ["INBOX", "Reports 1.5", "Plain"] {
        let folder = FolderPath::parse(name);
        sink.create_folder(&folder).await.unwrap();
        let body = format!("Subject: {name}\r\n\r\nbody\r\n");
        let meta = MessageMeta::new("1", body.len() as u64);
        sink.append(&folder, &Message::new(meta, MessageBody::from(body.into_bytes()))).await.unwrap();
        sink.flush(&folder).await.unwrap();
    }
    let user = format!("plandelim{}", rand::random::<u32>());
    create_cyrus_user(&user).await;
    let state = dir.path().join("state");
    let destination = cyrus_url(&user, true);
    let plan = run(&state, &["plan", &source, &destination, "--json"]);
    assert_eq!(plan.status.code(), Some(5), "stderr: {}\nstdout: {}", stderr(&plan), stdout(&plan));
    let found = last_json(&plan);
    let problems = found["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{found}");
    let problem = problems[0].as_str().unwrap();
    assert!(problem.contains("Reports 1.5") && problem.contains("hierarchy delimiter '.'"), "{problem}");
    // Mapped to a name without the delimiter, the copy can succeed.
    let mapped = run(&state, &["plan", &source, &destination, "--map", "Reports 1.5=Reports 1-5"]);
    assert_eq!(mapped.status.code(), Some(0), "{}", stderr(&mapped));
}
