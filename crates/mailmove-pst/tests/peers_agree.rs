//! The two peer readers the PST source is checked against, `readpst` (pst-utils) and `pffexport`
//! (pff-tools), see the same mail in every sample PST of the corpus, and see in `outlook.pst` what
//! it is known to hold. If the peers do not agree, a comparison of the crate with them means
//! nothing.

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use support::peers::{self, PeerView};

fn sample(name: &str) -> PathBuf {
    let path = peers::corpus_pst_dir().join(name);
    assert!(path.is_file(), "sample PST {} is missing", path.display());
    path
}

/// A line-per-difference account of where two views differ.
fn differences(left: &PeerView, right: &PeerView) -> String {
    let mut out = String::new();
    let folders: BTreeSet<&String> = left.folders.keys().chain(right.folders.keys()).collect();
    for folder in folders {
        let (l, r) = (left.folders.get(folder), right.folders.get(folder));
        if l == r {
            continue;
        }
        let _ = writeln!(out, "folder {folder:?}:");
        for (side, messages, other) in [("readpst only", l, r), ("pffexport only", r, l)] {
            for message in messages.into_iter().flatten() {
                if !other.is_some_and(|o| o.contains(message)) {
                    let _ = writeln!(out, "  {side}: {message:#?}");
                }
            }
        }
    }
    out
}

/// Both peers' views of sample `name`, asserted equal; the (common) view.
fn agreed_view(name: &str) -> PeerView {
    let pst = sample(name);
    let by_readpst = peers::readpst(&pst);
    let by_pffexport = peers::pffexport(&pst);
    assert_eq!(
        by_readpst,
        by_pffexport,
        "{name}: readpst (left) and pffexport (right) disagree:\n{}",
        differences(&by_readpst, &by_pffexport)
    );
    by_readpst
}

#[test]
fn peers_agree_on_outlook_pst() {
    let view = agreed_view("outlook.pst");

    let folders: Vec<&str> = view.folders.keys().map(String::as_str).collect();
    assert_eq!(folders, ["Inbox", "Recovered_Group2"], "{view:#?}");
    // The attachment table has 12 rows; the 11th is named 12.jpg and there is no 11.jpg.
    let mut attachments: Vec<(String, u64)> = [
        ("1.jpg", 1969),
        ("2.jpg", 1889),
        ("3.jpg", 2088),
        ("4.jpg", 1934),
        ("5.jpg", 2285),
        ("6.jpg", 2136),
        ("7.jpg", 1964),
        ("8.jpg", 1906),
        ("9.jpg", 1764),
        ("10.jpg", 1951),
        ("12.jpg", 1985),
    ]
    .into_iter()
    .map(|(name, size)| (name.to_string(), size))
    .collect();
    attachments.sort();
    for (folder, messages) in &view.folders {
        let [message] = messages.as_slice() else {
            panic!("{folder}: expected one message, got {messages:#?}")
        };
        assert_eq!(message.subject, "Welcome to Microsoft Office Outlook 2003", "{folder}");
        assert_eq!(message.sender, "olteam@microsoft.com", "{folder}");
        // 2007-04-29 22:27:33 UTC (both delivery and submit time)
        assert_eq!(message.date, Some(1_177_885_653), "{folder}");
        assert_eq!(message.attachments.len(), 11, "{folder}");
        assert_eq!(message.attachments, attachments, "{folder}");
    }
}

#[test]
fn peers_agree_on_dist_list_pst() {
    // a calendar item and a contact (distribution list): no mail
    let view = agreed_view("dist-list.pst");
    assert_eq!(view, PeerView::default());
}

#[test]
fn peers_agree_on_passworded_pst() {
    // a contact: no mail
    let view = agreed_view("passworded.pst");
    assert_eq!(view, PeerView::default());
}

#[test]
fn peers_agree_on_empty_pst() {
    let view = agreed_view("Empty.pst");
    assert_eq!(view, PeerView::default());
}

/// Any sample added to the corpus later is covered too.
#[test]
fn peers_agree_on_every_corpus_file() {
    let dir = peers::corpus_pst_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list the PST corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.to_ascii_lowercase().ends_with(".pst"))
        .collect();
    names.sort();
    for known in ["Empty.pst", "dist-list.pst", "outlook.pst", "passworded.pst"] {
        assert!(names.iter().any(|n| n == known), "{known} is missing from {}", dir.display());
    }
    for name in &names {
        agreed_view(name);
    }
}
