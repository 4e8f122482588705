//! The PST source against two independent readers (readpst and pffexport, from Debian): the
//! same folders holding mail, the same number of messages in each, the same subjects, senders,
//! dates, attachment names and sizes. Both tools must be installed (scripts/pst-peers.sh): a
//! missing one fails these tests.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use futures::StreamExt;
use mail_parser::{MessageParser, MimeHeaders};
use mailmove_core::MailSource;
use mailmove_pst::{PstConfig, PstStore};
use support::peers::{self, PeerMessage, PeerView, EMBEDDED_ITEM};

/// What mailmove's PST source reads, in the peers' terms, from the messages it rebuilds.
async fn our_view(pst: &Path) -> PeerView {
    let store = PstStore::open(PstConfig::new(pst)).expect("open the PST");
    let mut folders = BTreeMap::new();
    for folder in store.list_folders().await.expect("folders") {
        assert!(folder.problem.is_none(), "{}: {:?}", folder.path, folder.problem);
        let metas: Vec<_> = store.list_messages(&folder.path, None).collect().await;
        let keys: Vec<_> = metas.into_iter().map(|meta| meta.expect("listing").key).collect();
        let mut messages = Vec::new();
        let mut fetched = store.fetch(&folder.path, &keys);
        while let Some(message) = fetched.next().await {
            let message = message.expect("fetch");
            assert!(message.meta.reconstructed, "every PST message is marked reconstructed");
            assert_eq!(message.meta.damage, None);
            let bytes = message.body.to_bytes().expect("body");
            let parsed = MessageParser::default().parse(&bytes[..]).expect("parses as a message");
            let mut attachments: Vec<(String, u64)> = parsed
                .attachments()
                .map(|part| match part.message() {
                    Some(_) => (EMBEDDED_ITEM.to_string(), 0),
                    None => (part.attachment_name().unwrap_or("").to_string(), part.contents().len() as u64),
                })
                .collect();
            attachments.sort();
            messages.push(PeerMessage {
                subject: parsed.subject().unwrap_or("").trim().to_string(),
                sender: parsed
                    .from()
                    .and_then(|from| from.first())
                    .and_then(|from| from.address())
                    .unwrap_or("")
                    .to_lowercase(),
                date: message.meta.internal_date.map(|date| date.timestamp()),
                attachments,
            });
        }
        assert_eq!(messages.len(), keys.len(), "{}: every listed item fetched", folder.path);
        if !messages.is_empty() {
            messages.sort();
            folders.insert(folder.path.to_string(), messages);
        }
    }
    PeerView { folders }
}

async fn agrees_with_both_peers(file: &str) -> PeerView {
    let path = peers::corpus_pst_dir().join(file);
    let ours = our_view(&path).await;
    assert_eq!(ours, peers::readpst(&path), "{file}: mailmove vs readpst");
    assert_eq!(ours, peers::pffexport(&path), "{file}: mailmove vs pffexport");
    ours
}

#[tokio::test]
async fn outlook_pst_reads_as_readpst_and_pffexport_read_it() {
    let ours = agrees_with_both_peers("outlook.pst").await;
    // Not an empty agreement: the sample's two messages, each with its 11 JPEGs.
    assert_eq!(ours.message_count(), 2);
    for message in ours.folders.values().flatten() {
        assert_eq!(message.attachments.len(), 11);
        assert!(message.attachments.iter().all(|(name, size)| name.ends_with(".jpg") && *size > 1000));
    }
}

#[tokio::test]
async fn files_without_mail_read_as_the_peers_read_them() {
    for file in ["dist-list.pst", "passworded.pst", "Empty.pst"] {
        let ours = agrees_with_both_peers(file).await;
        assert_eq!(ours.message_count(), 0, "{file}");
    }
}

#[tokio::test]
async fn items_that_are_not_mail_are_counted_not_dropped_silently() {
    let store = PstStore::open(PstConfig::new(peers::corpus_pst_dir().join("dist-list.pst"))).unwrap();
    let folders = store.list_folders().await.unwrap();
    for folder in &folders {
        let _ = store.list_messages(&folder.path, None).collect::<Vec<_>>().await;
    }
    let warnings = store.warnings().join("\n");
    assert!(warnings.contains("Calendar (IPF.Appointment, 1 item)"), "{warnings}");
    assert!(warnings.contains("Contacts (IPF.Contact, 2 items)"), "{warnings}");
    assert!(
        !folders.iter().any(|folder| folder.path.name() == "Calendar"),
        "no empty calendar folder at the destination"
    );
}

/// Every message of a store, rebuilt: key → bytes.
async fn rebuilt(store: &PstStore) -> BTreeMap<String, (bool, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for folder in store.list_folders().await.unwrap() {
        let metas: Vec<_> = store.list_messages(&folder.path, None).collect().await;
        let keys: Vec<_> = metas.into_iter().map(|meta| meta.unwrap().key).collect();
        let fetched: Vec<_> = store.fetch(&folder.path, &keys).collect().await;
        for message in fetched {
            let message = message.unwrap();
            let bytes = message.body.to_bytes().unwrap().to_vec();
            out.insert(message.meta.key.to_string(), (message.body.is_spooled(), bytes));
        }
    }
    out
}

#[tokio::test]
async fn rebuilds_are_deterministic_and_spool_past_the_threshold() {
    let path = peers::corpus_pst_dir().join("outlook.pst");
    let in_memory = rebuilt(&PstStore::open(PstConfig::new(&path)).unwrap()).await;
    let again = rebuilt(&PstStore::open(PstConfig::new(&path)).unwrap()).await;
    assert_eq!(in_memory, again, "the same item gives the same bytes in another process's reading");
    assert_eq!(in_memory.len(), 2);
    assert!(in_memory.values().all(|(spooled, _)| !spooled), "50 KB stays under the default threshold");
    let spooling = PstConfig::from_url(&format!("pst:{}?spool_threshold=4KiB", path.display())).unwrap();
    let spooled = rebuilt(&PstStore::open(spooling).unwrap()).await;
    assert!(spooled.values().all(|(spooled, _)| *spooled), "a rebuilt message past the threshold is on disk");
    let bytes =
        |map: &BTreeMap<String, (bool, Vec<u8>)>| map.values().map(|(_, b)| b.clone()).collect::<Vec<_>>();
    assert_eq!(bytes(&spooled), bytes(&in_memory));
}
