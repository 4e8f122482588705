//! Damaged and hostile PST files: truncations and flipped bytes of the sample files. Whatever the
//! damage, opening gives a clear error or a store; reading gives messages or errors naming the
//! item; nothing panics, hangs or takes the reader thread down; and a copy through the engine
//! reports every item it could not read as failed, never as copied.

mod support;

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use mailmove_core::engine::Copier;
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Error, MailSource};
use mailmove_pst::{PstConfig, PstStore};
use proptest::prelude::*;
use support::peers;

/// What reading a damaged file gave.
#[derive(Debug, Default)]
struct Outcome {
    opened: bool,
    folders: usize,
    listed: usize,
    fetched: usize,
    errors: Vec<String>,
}

/// Opens `path` and reads everything it can, checking every error on the way.
async fn read_all(path: &Path) -> Outcome {
    let mut outcome = Outcome::default();
    let store = match PstStore::open(PstConfig::new(path)) {
        Ok(store) => store,
        Err(error) => {
            assert!(matches!(error, Error::Corrupt { .. }), "a damaged file is Corrupt, not {error:?}");
            outcome.errors.push(error.to_string());
            return outcome;
        }
    };
    outcome.opened = true;
    let folders = match store.list_folders().await {
        Ok(folders) => folders,
        Err(error) => {
            outcome.errors.push(error.to_string());
            Vec::new()
        }
    };
    outcome.folders = folders.len();
    for folder in folders.iter().filter(|folder| folder.problem.is_none()) {
        let metas: Vec<_> = store.list_messages(&folder.path, None).collect().await;
        let mut keys = Vec::new();
        for meta in metas {
            match meta {
                Ok(meta) => keys.push(meta.key),
                Err(error) => outcome.errors.push(error.to_string()),
            }
        }
        outcome.listed += keys.len();
        for key in &keys {
            let fetched: Vec<_> = store.fetch(&folder.path, std::slice::from_ref(key)).collect().await;
            for message in fetched {
                match message {
                    Ok(message) => {
                        assert!(message.meta.reconstructed);
                        assert_eq!(message.body.len(), message.body.to_bytes().unwrap().len() as u64);
                        outcome.fetched += 1;
                    }
                    Err(error) => {
                        assert!(
                            error.is_message_failure(),
                            "one item's damage fails that item only: {error:?}"
                        );
                        assert!(
                            error.to_string().contains(key.as_str()),
                            "the error names the item: {error}"
                        );
                        outcome.errors.push(error.to_string());
                    }
                }
            }
        }
    }
    for error in &outcome.errors {
        assert!(!error.contains("reader stopped"), "the reader thread survived: {error}");
    }
    outcome
}

fn sample() -> Vec<u8> {
    std::fs::read(peers::corpus_pst_dir().join("outlook.pst")).expect("outlook.pst")
}

fn write_variant(dir: &tempfile::TempDir, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join("damaged.pst");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn truncations_are_errors_or_partial_reads_never_panics() {
    let bytes = sample();
    let dir = tempfile::tempdir().unwrap();
    let mut cuts: Vec<usize> = vec![0, 3, 4, 11, 12, 100, 511, 512, 513, 564, 4096, 0x4400];
    cuts.extend((0x4400..bytes.len()).step_by(3000));
    cuts.push(bytes.len() - 1);
    let mut partial = 0;
    for cut in cuts {
        let outcome = read_all(&write_variant(&dir, &bytes[..cut])).await;
        if cut < 12 {
            assert!(!outcome.opened, "{cut}: {outcome:?}");
            assert!(
                outcome.errors[0].contains("too short") || outcome.errors[0].contains("PST"),
                "{outcome:?}"
            );
        }
        if outcome.opened && outcome.fetched < 2 {
            partial += 1;
        }
    }
    // The file's blocks lie all over it: most cuts lose something, and say so.
    assert!(partial > 0);
}

#[tokio::test]
async fn a_file_that_is_not_a_pst_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let not_pst =
        write_variant(&dir, b"From ana@example.org Mon Jan  1 00:00:00 2024\nSubject: hi\n\nbody\n");
    let error = PstStore::open(PstConfig::new(&not_pst)).unwrap_err().to_string();
    assert!(error.contains("not a PST file"), "{error}");
    let mut ost = sample();
    ost[8..10].copy_from_slice(b"SO");
    let error = PstStore::open(PstConfig::new(write_variant(&dir, &ost))).unwrap_err().to_string();
    assert!(error.contains("OST"), "{error}");
    let missing = PstStore::open(PstConfig::new(dir.path().join("nope.pst"))).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing:?}");
}

/// A message whose attachment data is damaged still copies, without that attachment, and is
/// reported as damaged; an item that cannot be read at all is a failure. Either way the run
/// never claims a copy it did not make.
#[tokio::test]
async fn a_copy_of_a_damaged_file_reports_what_it_could_not_carry() {
    let bytes = sample();
    let dir = tempfile::tempdir().unwrap();
    let mut saw_damage_or_failure = false;
    for cut in (0x4400..bytes.len()).step_by(9000) {
        let path = write_variant(&dir, &bytes[..cut]);
        let Ok(source) = PstStore::open(PstConfig::new(&path)) else { continue };
        let sink = Arc::new(MemoryStore::new("dst"));
        let report = Copier::from_arcs(Arc::new(source), sink.clone()).run().await.expect("run");
        let stored: usize = sink.folders().iter().map(|folder| sink.contents(folder).len()).sum();
        assert_eq!(stored as u64, report.copied, "{cut}: a copied message is at the destination");
        assert_eq!(report.reconstructed, report.copied, "{cut}");
        if report.failed > 0 || !report.damaged.is_empty() {
            saw_damage_or_failure = true;
        }
    }
    assert!(saw_damage_or_failure, "some cut must land in the messages' blocks");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn flipped_bytes_never_panic(flips in proptest::collection::vec((0usize..271_360, any::<u8>()), 1..16)) {
        let mut bytes = sample();
        for (offset, value) in flips {
            let offset = offset % bytes.len();
            bytes[offset] ^= value | 1;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_variant(&dir, &bytes);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let outcome = runtime.block_on(read_all(&path));
        prop_assert!(outcome.fetched <= 2, "{outcome:?}");
    }
}

/// A folder whose contents table is lost (the file cut at 100,000 bytes loses
/// Recovered_Group2's) is an error naming the folder, not an empty folder: the item it counts
/// is never dropped silently.
#[tokio::test]
async fn a_folder_whose_items_cannot_be_listed_says_so() {
    let bytes = sample();
    let dir = tempfile::tempdir().unwrap();
    let store = PstStore::open(PstConfig::new(write_variant(&dir, &bytes[..100_000]))).unwrap();
    let folders = store.list_folders().await.unwrap();
    let mut named = Vec::new();
    for folder in &folders {
        let counted = folder.messages.unwrap_or(0);
        let listed: Vec<_> = store.list_messages(&folder.path, None).collect().await;
        let errors: Vec<String> =
            listed.iter().filter_map(|meta| meta.as_ref().err()).map(ToString::to_string).collect();
        let metas = listed.len() - errors.len();
        if (metas as u64) < counted {
            let warned = store.warnings().iter().any(|warning| warning.contains(&folder.path.to_string()));
            assert!(
                !errors.is_empty() || warned,
                "{}: {counted} counted, {metas} listed, nothing said",
                folder.path
            );
            named.push(folder.path.to_string());
        }
    }
    assert!(named.contains(&"Recovered_Group2".to_string()), "{named:?}");
}
