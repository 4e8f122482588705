//! "Restore this one message from last year's mbox into the user's INBOX" as one command: `copy
//! --message-id` brings exactly that message into a Maildir INBOX that holds other mail, `verify`
//! with the same selection says identical, and `inventory --from` counts only what it selects.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use mailmove::core::{fingerprint, Fingerprint, MessageBody};
use support::*;

/// Last year's mbox: five messages, the third is the one to restore.
const LAST_YEAR: &[&str] = &[
    "From: Ana <ana@example.org>\nSubject: Budget\nMessage-ID: <budget-1@example.org>\n\nThe budget.\n",
    "From: Bo <bo@example.org>\nSubject: Lunch\nMessage-ID: <lunch-2@example.org>\n\nNoon?\n",
    "From: =?UTF-8?Q?Ana_L=C3=B3pez?= <ana@example.org>\nSubject: Contract signed\n\
     Message-ID: <contract-3@example.org>\n\nThe signed contract is attached.\n",
    "From: Cy <cy@example.org>\nSubject: Re: Contract signed\nMessage-ID: <re-contract-3@example.org>\n\nThanks.\n",
    "From: Di <di@example.org>\nSubject: Weekly\nMessage-ID: <weekly-5@example.org>\n\nNothing new.\n",
];

/// Mail the user has now, already in the Maildir INBOX.
const NOW: &[&str] = &[
    "From: Ed <ed@example.org>\nSubject: Today\nMessage-ID: <today-1@example.org>\n\nHello.\n",
    "From: Ana <ana@example.org>\nSubject: Contract signed?\nMessage-ID: <new-2@example.org>\n\nDid we?\n",
];

/// An mbox file holding `messages`.
fn mbox(path: &Path, messages: &[&str]) {
    let mut text = String::new();
    for message in messages {
        text.push_str("From sender@example.org Mon Jan  8 10:00:00 2024\n");
        text.push_str(message);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn fingerprint_of(message: &str) -> Fingerprint {
    fingerprint::strict(&MessageBody::from(message.as_bytes().to_vec())).unwrap()
}

/// What `messages` are in INBOX, as `content` gives a store.
fn inbox_of(messages: &[&str]) -> BTreeMap<(String, Fingerprint), usize> {
    let mut out = BTreeMap::new();
    for message in messages {
        *out.entry(("INBOX".to_string(), fingerprint_of(message))).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn one_message_is_restored_verified_and_counted_by_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, now) = (dir.path().join("2024.mbox"), dir.path().join("now.mbox"));
    mbox(&archive, LAST_YEAR);
    mbox(&now, NOW);
    let source = format!("mbox:{}", archive.display());
    let destination = format!("maildir:{}", dir.path().join("Maildir").display());
    let existing = run(dir.path(), &["copy", &format!("mbox:{}", now.display()), &destination, "--quiet"]);
    assert_eq!(existing.status.code(), Some(0), "{}", stderr(&existing));

    // The restore: one command, the message by its Message-ID (angle brackets optional).
    let restore =
        run(dir.path(), &["copy", &source, &destination, "--message-id", "contract-3@example.org", "--json"]);
    assert_eq!(restore.status.code(), Some(0), "{}", stderr(&restore));
    let report = last_json(&restore);
    assert_eq!((report["copied"].as_u64(), report["filtered"].as_u64()), (Some(1), Some(4)), "{report}");
    assert_eq!(report["failed"], 0);
    let mut expected: Vec<&str> = NOW.to_vec();
    expected.push(LAST_YEAR[2]);
    assert_eq!(content(&destination).await, inbox_of(&expected), "exactly that message arrived");

    // Verified with the same selection: identical, though the INBOX holds other mail.
    let verify = run(
        dir.path(),
        &["verify", &source, &destination, "--message-id", "<contract-3@example.org>", "--json"],
    );
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
    let verdict = last_json(&verify);
    assert_eq!(verdict["identical"], true, "{verdict}");
    assert_eq!(verdict["folders"][0]["destination_messages"], 1, "{verdict}");
    // Without it, the rest of last year's mbox is missing and today's mail is extra.
    let whole = run(dir.path(), &["verify", &source, &destination, "--json"]);
    assert_eq!(whole.status.code(), Some(3), "{}", stderr(&whole));

    // A selection that combines: Ana's messages about the contract.
    let both = run(
        dir.path(),
        &["inventory", &source, "--from", "ANA@example.org", "--subject", "contract", "--json"],
    );
    assert_eq!(both.status.code(), Some(0), "{}", stderr(&both));
    assert_eq!(last_json(&both)["messages"], 1);

    // Inventory by sender: only Ana's messages count (one with an RFC 2047 encoded name).
    let by_ana = run(dir.path(), &["inventory", &source, "--from", "ana@example.org", "--json"]);
    assert_eq!(by_ana.status.code(), Some(0), "{}", stderr(&by_ana));
    let inventory = last_json(&by_ana);
    assert_eq!(inventory["messages"], 2, "{inventory}");
    let bytes = (LAST_YEAR[0].len() + LAST_YEAR[2].len()) as u64;
    assert_eq!(inventory["bytes"].as_u64(), Some(bytes), "{inventory}");
    let human = run(dir.path(), &["inventory", &source, "--from", "lópez"]);
    assert_eq!(human.status.code(), Some(0), "{}", stderr(&human));
    assert!(stdout(&human).contains("total: 1 messages"), "{}", stdout(&human));
    assert!(stdout(&human).contains("--from \"lópez\""), "{}", stdout(&human));

    // A blank value is the command line's mistake (exit 2), before anything is read.
    let blank = run(dir.path(), &["copy", &source, &destination, "--subject", " "]);
    assert_eq!(blank.status.code(), Some(2), "{}", stderr(&blank));
    assert!(stderr(&blank).contains("--subject"), "{}", stderr(&blank));

    // A later copy without the selection brings the rest: the restore recorded only its message.
    let rest = run(dir.path(), &["copy", &source, &destination, "--json"]);
    assert_eq!(rest.status.code(), Some(0), "{}", stderr(&rest));
    assert_eq!(last_json(&rest)["copied"], 4);
}
