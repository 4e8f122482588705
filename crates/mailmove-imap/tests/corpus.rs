//! Every message of ../shared/corpus uploaded to Dovecot and read back.
//!
//! IMAP messages are CRLF: Dovecot serves a stored bare LF as CRLF. So a message that is pure
//! CRLF must come back byte-exact; one with bare LF must come back byte-exact after LF → CRLF
//! (which is also what its strict fingerprint compares). A message the server refuses must be a
//! clear per-message error, never a panic; one it stores altered (a binary part re-encoded) must be
//! named by the append.
mod common;

use std::path::Path;

use futures::StreamExt;
use mailmove_core::{
    fingerprint, FolderPath, MailSink, MailSource, MailSourceExt, Message, MessageBody, MessageMeta,
};

fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[tokio::test]
async fn corpus_round_trips() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus"));
    // ../shared is beside the checkout in CI: a missing corpus is a failure, never a skip.
    assert!(root.is_dir(), "{} does not exist: ../shared/corpus must be beside the checkout", root.display());
    let mut files = Vec::new();
    for sub in ["thirdparty", "malformed"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub)) else { continue };
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "eml") {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    assert!(!files.is_empty());

    let user = common::user("corpus");
    let store = common::store(&user).await;
    let folder = FolderPath::parse("Corpus");
    store.create_folder(&folder).await.unwrap();
    let mut expected = Vec::new();
    let mut refused = Vec::new();
    let mut altered = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let message =
            Message::new(MessageMeta::new(path.display().to_string(), 0), MessageBody::from(bytes.clone()));
        match store.append(&folder, &message).await {
            Ok(appended) if appended.alteration.is_some() => {
                assert!(bytes.contains(&0), "{}: only the NUL message is re-encoded", path.display());
                altered.push((path.clone(), appended.alteration));
            }
            Ok(_) => expected.push((path.clone(), bytes)),
            Err(error) => {
                assert!(error.is_message_failure(), "{}: not a per-message error: {error:?}", path.display());
                assert!(
                    bytes.contains(&0),
                    "{}: only messages with NUL bytes may be refused: {error}",
                    path.display()
                );
                refused.push(format!("{}: {error}", path.display()));
            }
        }
    }
    println!("{} stored, refused: {refused:#?}, altered: {altered:#?}", expected.len());
    // Appends are pipelined: flush reads the server's answers (all OK here).
    store.flush(&folder).await.unwrap();

    let reader = common::store(&user).await;
    let metas = reader.collect_messages(&folder).await.unwrap();
    assert_eq!(metas.len(), expected.len() + altered.len());
    let keys: Vec<_> = metas.iter().map(|m| m.key.clone()).collect();
    let fetched: Vec<_> = reader.fetch(&folder, &keys).collect().await;
    assert_eq!(fetched.len(), expected.len() + altered.len());
    let mut altered_left = altered.len();
    let mut remaining = expected.clone();
    let mut unreadable = 0;
    for item in fetched {
        let message = match item {
            Ok(message) => message,
            Err(error @ mailmove_core::Error::Corrupt { .. }) => {
                // Only a message with NUL bytes may be unreadable byte-exact, and it is reported.
                println!("reported, not altered: {error}");
                unreadable += 1;
                continue;
            }
            Err(error) => panic!("{error:?}"),
        };
        let got = message.body.to_bytes().unwrap();
        let Some(position) = remaining.iter().position(|(_, original)| crlf(original) == got[..]) else {
            // Only as many inexact copies as appends that said so.
            assert!(
                altered_left > 0,
                "fetched message {} matches no uploaded file exactly",
                message.meta.key
            );
            altered_left -= 1;
            continue;
        };
        let (path, original) = remaining.remove(position);
        assert_eq!(
            fingerprint::strict_of_bytes(&original),
            fingerprint::strict_of_bytes(&got),
            "{}",
            path.display()
        );
        if !original
            .windows(1)
            .enumerate()
            .any(|(i, w)| w[0] == b'\n' && (i == 0 || original[i - 1] != b'\r'))
        {
            assert_eq!(original[..], got[..], "{}: a CRLF message must come back byte-exact", path.display());
        }
    }
    let with_nul = remaining.iter().filter(|(_, original)| original.contains(&0)).count();
    assert_eq!(
        remaining.len(),
        unreadable,
        "left over: {:?}",
        remaining.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    assert_eq!(with_nul, unreadable);
    // And the sink's dedup listing sees the same fingerprints.
    let existing = mailmove_core::MailSinkExt::collect_existing(&store, &folder).await.unwrap();
    assert_eq!(existing.len(), expected.len() + altered.len());
}
