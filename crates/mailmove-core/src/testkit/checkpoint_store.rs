//! The conformance of a [`CheckpointStore`]: what one run recorded, the next run's open gives
//! back, row for row, and a copy killed at any durability point resumes exactly once through it.
//! The SQLite file store and the fleet's PostgreSQL store run the same checks.

use crate::checkpoint::{CheckpointStore, IntentRow, Outcome, Watermark};
use crate::engine::{CopyOptions, EventSink, Limits, RetryPolicy};
use crate::fingerprint::Fingerprint;
use crate::flags::Flags;
use crate::folder::FolderPath;
use crate::memory::MemoryStore;
use crate::message::SourceKey;
use crate::stored::Alteration;

use super::{backend_error, ensure, fail, KitResult};

const SOURCE: &str = "kit-source";
const DESTINATION: &str = "kit-destination";

fn fingerprint(n: u8) -> Fingerprint {
    Fingerprint::from_bytes([n; 32])
}

fn intents(keys: &[&str]) -> Vec<IntentRow> {
    keys.iter()
        .enumerate()
        .map(|(index, key)| {
            IntentRow::new(SourceKey::new(*key), fingerprint(index as u8 + 1), 100 + index as u64)
        })
        .collect()
}

/// Every kind of write the engine makes goes into a checkpoint of `store` (a fresh job), which
/// is dropped and opened again: the second open holds the same rows, and keeps every write it
/// then accepts for a third.
pub async fn check_checkpoint_store_keeps_every_write(store: &dyn CheckpointStore) -> KitResult {
    const CHECK: &str = "checkpoint_store_keeps_every_write";
    let error = |e| backend_error(CHECK, e);
    let first = store.open(SOURCE, DESTINATION).await.map_err(error)?;
    let (inbox, archive, gone) =
        (FolderPath::parse("INBOX"), FolderPath::parse("Archive"), FolderPath::parse("Gone"));
    let inbox_id = first.folder(&inbox, Some(7), &inbox).await.map_err(error)?.id;
    let archive_id =
        first.folder(&archive, Some(1), &FolderPath::parse("Old/Archive")).await.map_err(error)?.id;
    let run = first.start_listing(inbox_id).await.map_err(error)?;
    let rows = intents(&["1", "2", "3", "4", "5"]);
    let listed: Vec<IntentRow> = rows.iter().cloned().map(|row| row.with_listed_run(Some(run))).collect();
    first.record_intents(inbox_id, listed.clone()).await.map_err(error)?;
    first.record_intents(archive_id, intents(&["10", "11"])).await.map_err(error)?;
    let mut altered = listed[3].clone().resolve(Outcome::Copied { dest_key: Some("d4".into()) });
    altered.alteration =
        Some(Alteration::new("header Subject changed").with_stored_fingerprint(fingerprint(99)));
    let results = vec![
        listed[0].clone().resolve(Outcome::Copied { dest_key: Some("d1".into()) }),
        listed[1].clone().with_flags(Flags::from_imap_list(["\\Seen"])).resolve(Outcome::Matched),
        listed[2].clone().resolve(Outcome::Failed { reason: "refused: too big".into() }),
        altered,
    ];
    first.record_results(inbox_id, results).await.map_err(error)?;
    first
        .record_results(
            archive_id,
            vec![intents(&["10"])[0].clone().resolve(Outcome::SetAside { reason: "into refused/".into() })],
        )
        .await
        .map_err(error)?;
    first
        .set_watermark(inbox_id, Watermark { key: SourceKey::new("5"), filter: "all".into() })
        .await
        .map_err(error)?;
    first.settle(archive_id, Some("revision 9 (all)".into())).await.map_err(error)?;
    first.mark_listed(inbox_id, run, vec![SourceKey::new("1"), SourceKey::new("2")]).await.map_err(error)?;
    first.record_deleting(inbox_id, vec![SourceKey::new("1")]).await.map_err(error)?;
    first.forget(inbox_id, vec![SourceKey::new("2")]).await.map_err(error)?;
    first
        .record_flags(inbox_id, vec![(SourceKey::new("4"), Flags::from_imap_list(["\\Flagged"]))])
        .await
        .map_err(error)?;
    first
        .record_stored_form(
            archive_id,
            fingerprint(50),
            Alteration::new("moved").with_stored_fingerprint(fingerprint(51)),
        )
        .await
        .map_err(error)?;
    first.reserve_upload(600, 1_000, 1_800_000_000).await.map_err(error)?;
    let gone_id = first.folder(&gone, None, &gone).await.map_err(error)?.id;
    first.record_intents(gone_id, intents(&["7"])).await.map_err(error)?;
    first.drop_folder(gone_id).await.map_err(error)?;
    // A new epoch at the source drops the folder's key map (rule 6).
    first.folder(&archive, Some(2), &FolderPath::parse("Old/Archive")).await.map_err(error)?;
    let written = first.table_rows().await.map_err(error)?;
    drop(first);

    let second = store.open(SOURCE, DESTINATION).await.map_err(error)?;
    let reopened = second.table_rows().await.map_err(error)?;
    ensure(reopened == written, CHECK, || difference("second open", &written, &reopened))?;
    // The reopened checkpoint keeps what it records in turn.
    let state = second.folder(&inbox, Some(7), &inbox).await.map_err(error)?;
    ensure(state.id == inbox_id && state.pending == 1, CHECK, || {
        format!("INBOX reopened as {state:?}, expected id {inbox_id} with 1 pending intent")
    })?;
    second
        .record_results(inbox_id, vec![listed[4].clone().resolve(Outcome::Matched)])
        .await
        .map_err(error)?;
    let written = second.table_rows().await.map_err(error)?;
    drop(second);
    let third = store.open(SOURCE, DESTINATION).await.map_err(error)?;
    let reopened = third.table_rows().await.map_err(error)?;
    ensure(reopened == written, CHECK, || difference("third open", &written, &reopened))?;
    let totals = third.totals().await.map_err(error)?;
    ensure(totals.intents == 0 && totals.matched == 1, CHECK, || format!("totals {totals:?}"))?;
    Ok(())
}

fn difference(when: &str, written: &[String], reopened: &[String]) -> String {
    let missing: Vec<&String> = written.iter().filter(|row| !reopened.contains(row)).collect();
    let extra: Vec<&String> = reopened.iter().filter(|row| !written.contains(row)).collect();
    format!("{when}: rows written but missing {missing:?}; rows not written {extra:?}")
}

/// A copy killed right after each of several durability points of the destination (the
/// process gone: nothing after the kill is recorded) resumes through a new open of `store` and
/// ends with every message at the destination exactly once. `store` is opened once per kill:
/// it must start each time from the job's first state, so give a factory of fresh stores.
pub async fn check_checkpoint_store_resumes_a_killed_copy<S, F, Fut>(fresh_store: F) -> KitResult
where
    S: CheckpointStore,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::Result<S>>,
{
    const CHECK: &str = "checkpoint_store_resumes_a_killed_copy";
    let error = |e| backend_error(CHECK, e);
    let options = CopyOptions {
        retry: RetryPolicy::immediate(4),
        limits: Limits { commit_batch: 3, max_messages_in_flight: 3, ..Default::default() },
        ..CopyOptions::default()
    };
    // Flushes 1 and 2 are the two folders' index builds; later ones follow appended batches.
    for kill_at in [3, 4, 6, 9] {
        let store = fresh_store().await.map_err(error)?;
        let source = MemoryStore::new("kit-source");
        for (folder, count) in [("INBOX", 12u8), ("Sub/Folder", 8)] {
            for n in 0..count {
                let body =
                    format!("Subject: {folder} {n}\r\nMessage-ID: <{n}.{folder}@kit>\r\n\r\nbody {n}\r\n");
                source.insert(&FolderPath::parse(folder), body.into_bytes(), Flags::empty(), None);
            }
        }
        let sink = MemoryStore::new("kit-sink");
        sink.crash_after_flush(kill_at);
        let (source_id, sink_id) = (crate::MailSource::identity(&source), crate::MailSink::identity(&sink));
        let checkpoint = store.open(&source_id, &sink_id).await.map_err(error)?;
        let mut killed = sink.crash_signal();
        let no_events = EventSink::none();
        tokio::select! {
            _ = crate::engine::copy(&source, &sink, &options, &checkpoint, &no_events) => {
                return Err(fail(CHECK, format!("kill at flush {kill_at}: the run ended instead of hanging at the kill")));
            }
            _ = killed.recv() => {}
        }
        sink.recover();
        drop(checkpoint);
        let checkpoint = store.open(&source_id, &sink_id).await.map_err(error)?;
        let report = crate::engine::copy(&source, &sink, &options, &checkpoint, &EventSink::none())
            .await
            .map_err(error)?;
        ensure(report.failed == 0, CHECK, || {
            format!("kill at flush {kill_at}: failures {:?}", report.failures)
        })?;
        for folder in source.folders() {
            let mut expected: Vec<Vec<u8>> =
                source.contents(&folder).into_iter().map(|(bytes, ..)| bytes).collect();
            let mut held: Vec<Vec<u8>> =
                sink.contents(&folder).into_iter().map(|(bytes, ..)| bytes).collect();
            expected.sort();
            held.sort();
            ensure(expected == held, CHECK, || {
                format!(
                    "kill at flush {kill_at}: {folder} holds {} messages for {} at the source (lost or duplicated)",
                    held.len(),
                    expected.len()
                )
            })?;
        }
    }
    Ok(())
}
