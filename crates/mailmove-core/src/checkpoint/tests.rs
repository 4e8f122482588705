//! Unit tests of the checkpoint store.

use super::*;
use crate::fingerprint::strict_of_bytes;

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
