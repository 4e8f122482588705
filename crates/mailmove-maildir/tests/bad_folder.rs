//! One folder that cannot be read fails that folder, by name; the run copies everything else.

use std::os::unix::fs::symlink;
use std::path::Path;

use mailmove_core::engine::{Copier, RunOutcome};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{FolderPath, MailSource};
use mailmove_maildir::{Layout, MaildirConfig, MaildirStore};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn maildir(dir: &Path) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
}

fn body(n: u32) -> Vec<u8> {
    format!("Subject: message {n}\r\nMessage-ID: <{n}@bad-folder.test>\r\n\r\nbody {n}\r\n").into_bytes()
}

/// INBOX (2 messages), `Good` (1) and `Good/Child` (1), and two folders that cannot be read:
/// `Bad`, whose `cur` is a regular file, and `Linked`, whose `cur` is a link out of the tree.
fn build(root: &Path, outer: &Path, layout: Layout) {
    let dir = |folder: &str| match (layout, folder) {
        (_, "") => root.to_path_buf(),
        (Layout::Fs, _) => root.join(folder),
        (_, _) => root.join(format!(".{}", folder.replace('/', "."))),
    };
    maildir(root);
    write(&root.join("cur/1600000001.M1P1.mx:2,S"), &body(1));
    write(&root.join("new/1600000002.M1P1.mx"), &body(2));
    maildir(&dir("Good"));
    write(&dir("Good").join("cur/1600000003.M1P1.mx:2,S"), &body(3));
    maildir(&dir("Good/Child"));
    write(&dir("Good/Child").join("cur/1600000004.M1P1.mx:2,"), &body(4));

    std::fs::create_dir_all(dir("Bad").join("new")).unwrap();
    write(&dir("Bad").join("new/1600000005.M1P1.mx"), &body(5));
    write(&dir("Bad").join("cur"), b"not a directory");

    let elsewhere = outer.join("elsewhere");
    maildir(&elsewhere);
    write(&elsewhere.join("cur/1600000006.M1P1.mx:2,S"), b"Subject: secret\r\n\r\nsecret\r\n");
    std::fs::create_dir_all(dir("Linked").join("new")).unwrap();
    symlink(elsewhere.join("cur"), dir("Linked").join("cur")).unwrap();
}

#[tokio::test]
async fn an_unreadable_folder_fails_alone_and_by_name() {
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("Maildir");
        build(&root, outer.path(), layout);
        let source = MaildirStore::open_source(MaildirConfig::new(&root).with_layout(layout)).unwrap();
        let destination = MemoryStore::new("destination");

        let report = Copier::new(source.clone(), destination.clone())
            .run()
            .await
            .unwrap_or_else(|err| panic!("{layout}: the run failed as a whole: {err}"));

        assert_eq!(report.outcome, RunOutcome::CompletedWithFailures, "{layout}: {report:#?}");
        assert_eq!(report.copied, 4, "{layout}: {report:#?}");
        let expected = [("INBOX", 2), ("Good", 1), ("Good/Child", 1)];
        for (folder, count) in expected {
            assert_eq!(destination.contents(&FolderPath::parse(folder)).len(), count, "{layout} {folder}");
        }
        let copied: Vec<String> = destination.folders().iter().map(ToString::to_string).collect();
        assert!(!copied.iter().any(|f| f == "Bad" || f == "Linked"), "{layout}: {copied:?}");

        for (folder, why) in [("Bad", "not a directory"), ("Linked", "symbolic link")] {
            let row = report.folders.iter().find(|row| row.folder == folder);
            let error = row.and_then(|row| row.error.as_deref());
            assert!(error.is_some_and(|e| e.contains(why)), "{layout} {folder}: {row:?}");
            assert!(
                report.failures.iter().any(|f| f.folder == folder && f.reason.contains(why)),
                "{layout} {folder}: {:?}",
                report.failures
            );
        }
        for (folder, _) in expected {
            let row = report.folders.iter().find(|row| row.folder == folder).unwrap();
            assert_eq!((row.error.as_deref(), row.failed), (None, 0), "{layout} {folder}");
        }
        // The skipped link reaches the run report as a warning too.
        let link = match layout {
            Layout::Fs => root.join("Linked/cur"),
            _ => root.join(".Linked/cur"),
        };
        assert!(
            report.warnings.iter().any(|w| w.contains(&link.display().to_string())),
            "{layout}: {:?}",
            report.warnings
        );
        assert_eq!(report.warnings, MailSource::warnings(&source));
    }
}
