//! Unit tests of the checkpoint store.

use super::*;
use crate::fingerprint::strict_of_bytes;
use crate::stored::Alteration;

#[tokio::test]
async fn intents_results_and_epoch_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sqlite");
    let checkpoint = Checkpoint::open(&path, "src", "dst").unwrap();
    let folder = FolderPath::inbox();
    let state = checkpoint.folder(&folder, Some(7), &folder).await.unwrap();
    assert!(state.fresh && !state.key_map_dropped);
    let fp = strict_of_bytes(b"a");
    let intents = vec![IntentRow::new("1".into(), fp, 1), IntentRow::new("2".into(), fp, 1)];
    checkpoint.record_intents(state.id, intents.clone()).await.unwrap();
    checkpoint
        .record_results(
            state.id,
            vec![intents[0].clone().resolve(Outcome::Copied { dest_key: Some("9".into()) })],
        )
        .await
        .unwrap();
    drop(checkpoint);

    let checkpoint = Checkpoint::open(&path, "src", "dst").unwrap();
    let state = checkpoint.folder(&folder, Some(7), &folder).await.unwrap();
    assert_eq!((state.fresh, state.pending), (false, 1));
    let records = checkpoint.lookup(state.id, vec!["1".into(), "2".into(), "3".into()]).await.unwrap();
    assert_eq!(records[&SourceKey::from("1")].state, MessageState::Copied);
    assert_eq!(records[&SourceKey::from("2")].state, MessageState::Intent);
    assert!(!records.contains_key(&SourceKey::from("3")));
    assert_eq!(checkpoint.done_fingerprint_counts(state.id).await.unwrap()[&fp], 1);
    assert_eq!(checkpoint.done_keys(&folder).await.unwrap(), vec![SourceKey::from("1")]);

    assert_eq!(
        checkpoint.totals().await.unwrap(),
        StateCounts { copied: 1, matched: 0, failed: 0, intents: 1 }
    );

    let changed = checkpoint.folder(&folder, Some(8), &folder).await.unwrap();
    assert!(changed.key_map_dropped);
    assert!(checkpoint.lookup(changed.id, vec!["1".into()]).await.unwrap().is_empty());
}

#[test]
fn one_run_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sqlite");
    let first = Checkpoint::open(&path, "src", "dst").unwrap();
    let err = Checkpoint::open(&path, "src", "dst").unwrap_err();
    assert!(matches!(err, Error::Config { .. }) && err.to_string().contains("another mailmove run"), "{err}");
    drop(first);
    Checkpoint::open(&path, "src", "dst").unwrap();
}

#[test]
fn refuses_another_jobs_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sqlite");
    drop(Checkpoint::open(&path, "src", "dst").unwrap());
    let err = Checkpoint::open(&path, "src", "other").unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
}

#[tokio::test]
async fn a_version_1_file_is_upgraded_and_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    let fingerprint = strict_of_bytes(b"Subject: old\r\n\r\nbody\r\n");
    {
        // The schema of version 1, as files written before stored fingerprints hold it.
        let connection = Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE folders(id INTEGER PRIMARY KEY, source_folder TEXT NOT NULL UNIQUE, epoch INTEGER,
                     dest_folder TEXT NOT NULL, watermark TEXT, watermark_filter TEXT);
                 CREATE TABLE messages(folder_id INTEGER NOT NULL REFERENCES folders(id), source_key TEXT NOT NULL,
                     fingerprint BLOB NOT NULL, size INTEGER NOT NULL, state INTEGER NOT NULL, dest_key TEXT,
                     reason TEXT, updated_at INTEGER NOT NULL, PRIMARY KEY(folder_id, source_key)) WITHOUT ROWID;
                 CREATE INDEX messages_state ON messages(folder_id, state);
                 INSERT INTO meta VALUES ('source', 'src'), ('destination', 'dst');
                 INSERT INTO folders(id, source_folder, epoch, dest_folder) VALUES (1, 'INBOX', 7, 'INBOX');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        connection
            .execute(
                "INSERT INTO messages VALUES (1, '1', ?1, 20, 1, NULL, NULL, 0)",
                [&fingerprint.as_bytes()[..]],
            )
            .unwrap();
    }
    let checkpoint = Checkpoint::open(&path, "src", "dst").unwrap();
    let folder = FolderPath::inbox();
    let state = checkpoint.folder(&folder, Some(7), &folder).await.unwrap();
    assert!(!state.fresh && !state.key_map_dropped);
    assert_eq!(checkpoint.done_fingerprint_counts(state.id).await.unwrap()[&fingerprint], 1);
    assert!(checkpoint.stored_forms(state.id).await.unwrap().is_empty());

    // An altered copy recorded now counts under what the destination holds, and its stored form
    // outlives a dropped key map.
    let stored = strict_of_bytes(b"Subject: oXd\r\n\r\nbody\r\n");
    let other = strict_of_bytes(b"Subject: \xc3\xb6ld\r\n\r\nbody\r\n");
    let mut row = IntentRow::new("2".into(), other, 20).resolve(Outcome::Copied { dest_key: None });
    row.alteration = Some(Alteration::new("header changed").with_stored_fingerprint(stored));
    checkpoint.record_results(state.id, vec![row]).await.unwrap();
    let counts = checkpoint.done_fingerprint_counts(state.id).await.unwrap();
    assert_eq!((counts.get(&stored), counts.get(&other)), (Some(&1), None));
    drop(checkpoint);
    let reopened = Checkpoint::open(&path, "src", "dst").unwrap();
    let renumbered = reopened.folder(&folder, Some(8), &folder).await.unwrap();
    assert!(renumbered.key_map_dropped);
    let forms = reopened.stored_forms(renumbered.id).await.unwrap();
    assert_eq!(forms[&other].stored_fingerprint, Some(stored));
}

#[tokio::test]
async fn held_by_key_answers_from_done_records_only_with_what_the_destination_holds() {
    let checkpoint = Checkpoint::in_memory("src", "dst").unwrap();
    let folder = FolderPath::inbox();
    let state = checkpoint.folder(&folder, Some(7), &folder).await.unwrap();
    let (plain, altered, stored, pending) =
        (strict_of_bytes(b"a"), strict_of_bytes(b"b"), strict_of_bytes(b"B"), strict_of_bytes(b"c"));
    let intents = vec![
        IntentRow::new("1".into(), plain, 1),
        IntentRow::new("2".into(), altered, 1),
        IntentRow::new("3".into(), pending, 1),
    ];
    checkpoint.record_intents(state.id, intents.clone()).await.unwrap();
    let mut changed = intents[1].clone().resolve(Outcome::Copied { dest_key: Some("7:2".into()) });
    changed.alteration = Some(Alteration::new("header changed").with_stored_fingerprint(stored));
    let results = vec![intents[0].clone().resolve(Outcome::Copied { dest_key: Some("7:1".into()) }), changed];
    checkpoint.record_results(state.id, results).await.unwrap();

    let keys = ["7:1", "7:2", "7:3", "8:1"].map(String::from).to_vec();
    let held = checkpoint.held_by_key(state.id, keys).await.unwrap();
    assert_eq!(held.len(), 2, "an intent and an unknown key say nothing: {held:?}");
    assert_eq!(held["7:1"], plain);
    assert_eq!(held["7:2"], stored, "an altered copy holds what the destination stored");
    let elsewhere = checkpoint.folder(&FolderPath::parse("Other"), Some(7), &folder).await.unwrap();
    assert!(checkpoint.held_by_key(elsewhere.id, vec!["7:1".into()]).await.unwrap().is_empty());
}
