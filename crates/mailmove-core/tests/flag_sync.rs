//! Flag sync: flag changes made at the source after a message was copied reach its copy on the
//! next run, merged three ways with what the destination changed meanwhile.

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, Event, EventSink, RetryPolicy, RunReport};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Flags, FolderPath, MailSourceExt, SourceKey};

mod common;

use common::{flags, inbox_source, run};

fn options() -> CopyOptions {
    CopyOptions { retry: RetryPolicy::immediate(3), ..CopyOptions::default() }
}

/// The flags of the destination's copies, by Message-ID order of insertion.
async fn destination_flags(sink: &MemoryStore) -> Vec<Flags> {
    sink.collect_messages(&FolderPath::inbox()).await.unwrap().into_iter().map(|m| m.flags).collect()
}

#[tokio::test]
async fn source_changes_reach_the_copies_and_the_destinations_own_changes_stay() {
    let inbox = FolderPath::inbox();
    let source = MemoryStore::new("source");
    source.create(&inbox, None);
    for i in 0..4 {
        let body = format!("Message-ID: <m{i}@t>\r\nSubject: {i}\r\n\r\nbody\r\n");
        source.insert(&inbox, body.into_bytes(), flags(&["\\Seen", "$Work"]), None);
    }
    let destination = MemoryStore::new("destination");
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let first = run(&source, &destination, &checkpoint, &options()).await;
    assert_eq!((first.copied, first.flags_updated), (4, 0));

    // At the source: message 1 unread and flagged, message 2 loses $Work and gains $Later.
    assert!(source.set_flags(&inbox, &SourceKey::from("1"), flags(&["\\Flagged", "$Work"])));
    assert!(source.set_flags(&inbox, &SourceKey::from("2"), flags(&["\\Seen", "$Later"])));
    // At the destination, meanwhile: the user answered message 1 and re-read... and labels message 3.
    assert!(destination.set_flags(&inbox, &SourceKey::from("1"), flags(&["\\Seen", "\\Answered", "$Work"])));
    assert!(destination.set_flags(&inbox, &SourceKey::from("3"), flags(&["\\Seen", "$Work", "$Mine"])));

    let events: std::sync::Arc<std::sync::Mutex<Vec<Event>>> = Default::default();
    let seen = events.clone();
    let sink = EventSink::callback(move |event| seen.lock().unwrap().push(event.clone()));
    let delta = copy(&source, &destination, &options(), &checkpoint, &sink).await.unwrap();
    assert_eq!((delta.copied, delta.flags_updated), (0, 2), "{delta:#?}");
    assert_eq!(delta.folders[0].flags_updated, 2);
    let updates = events.lock().unwrap().iter().filter(|e| matches!(e, Event::FlagsUpdated { .. })).count();
    assert_eq!(updates, 2);
    assert_eq!(
        destination_flags(&destination).await,
        vec![
            // Source: \Seen cleared, \Flagged set; the destination's \Answered stays.
            flags(&["\\Answered", "\\Flagged", "$Work"]),
            flags(&["\\Seen", "$Later"]),
            flags(&["\\Seen", "$Work", "$Mine"]),
            flags(&["\\Seen", "$Work"]),
        ]
    );

    // Nothing changed since: a further run changes nothing.
    let again = run(&source, &destination, &checkpoint, &options()).await;
    assert_eq!((again.copied, again.flags_updated), (0, 0), "{again:#?}");

    // Turned off, a change at the source stays at the source.
    assert!(source.set_flags(&inbox, &SourceKey::from("4"), flags(&["\\Deleted"])));
    let off = CopyOptions { sync_flags: false, ..options() };
    assert_eq!(run(&source, &destination, &checkpoint, &off).await.flags_updated, 0);
    assert_eq!(destination_flags(&destination).await[3], flags(&["\\Seen", "$Work"]));
    assert_eq!(run(&source, &destination, &checkpoint, &options()).await.flags_updated, 1);
    assert_eq!(destination_flags(&destination).await[3], flags(&["\\Deleted"]));
}

#[tokio::test]
async fn subscriptions_are_carried_on_every_run() {
    let (projects, old) = (FolderPath::parse("Projects"), FolderPath::parse("Old"));
    let source = MemoryStore::new("source");
    for folder in [&projects, &old] {
        source.create(folder, None);
        source.insert(folder, b"Subject: x\r\n\r\nx\r\n".to_vec(), Flags::empty(), None);
    }
    assert!(source.set_subscribed(&projects, true));
    let destination = MemoryStore::new("destination");
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let report = run(&source, &destination, &checkpoint, &options()).await;
    let subscribed =
        |report: &RunReport, name: &str| report.folders.iter().find(|f| f.folder == name).unwrap().subscribed;
    assert!(subscribed(&report, "Projects") && !subscribed(&report, "Old"), "{report:#?}");
    let listed = mailmove_core::MailSource::list_folders(&destination).await.unwrap();
    let at_destination = |path: &FolderPath| listed.iter().find(|f| &f.path == path).unwrap().subscribed;
    assert_eq!((at_destination(&projects), at_destination(&old)), (Some(true), Some(false)));

    // Subscribed at the source after the first run: carried by the next one.
    assert!(source.set_subscribed(&old, true));
    run(&source, &destination, &checkpoint, &options()).await;
    let listed = mailmove_core::MailSource::list_folders(&destination).await.unwrap();
    assert_eq!(listed.iter().find(|f| f.path == old).unwrap().subscribed, Some(true));
}

#[tokio::test]
async fn copies_whose_source_message_is_gone_are_removed_and_nothing_else() {
    let inbox = FolderPath::inbox();
    let source = inbox_source(5, &[]);
    let destination = MemoryStore::new("destination");
    // Already at the destination before the job (found, not copied by it): never removed.
    destination.create(&inbox, None);
    destination.insert(&inbox, b"Subject: 0\r\n\r\nbody 0\r\n".to_vec(), Flags::empty(), None);
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let sync = CopyOptions { sync_deletions: true, ..options() };
    let first = run(&source, &destination, &checkpoint, &sync).await;
    assert_eq!((first.copied, first.skipped, first.removed), (4, 1, 0), "{first:#?}");

    // At the source, three are deleted: the one found at the destination, and two copied.
    for key in ["1", "2", "3"] {
        assert!(source.remove(&inbox, &SourceKey::from(key)));
    }
    // Mail delivered to the destination after the switch.
    destination.insert(
        &inbox,
        b"Subject: new\r\n\r\narrived after the switch\r\n".to_vec(),
        Flags::empty(),
        None,
    );

    // Without the option nothing is removed.
    assert_eq!(run(&source, &destination, &checkpoint, &options()).await.removed, 0);
    assert_eq!(destination.contents(&inbox).len(), 6);

    let delta = run(&source, &destination, &checkpoint, &sync).await;
    assert_eq!((delta.copied, delta.removed), (0, 2), "{delta:#?}");
    let subjects: Vec<String> = destination
        .contents(&inbox)
        .iter()
        .map(|(body, ..)| String::from_utf8_lossy(body).lines().next().unwrap().to_string())
        .collect();
    assert_eq!(subjects, ["Subject: 0", "Subject: 3", "Subject: 4", "Subject: new"], "{subjects:?}");

    // Nothing more to do, and a new message at the source is copied as ever.
    source.insert(&inbox, b"Subject: 5\r\n\r\nbody 5\r\n".to_vec(), Flags::empty(), None);
    let again = run(&source, &destination, &checkpoint, &sync).await;
    assert_eq!((again.copied, again.removed), (1, 0), "{again:#?}");
    assert_eq!(destination.contents(&inbox).len(), 5);
}

/// A run killed after the destination made its copies durable but before they were recorded: the
/// next run finds them by fingerprint and records them as the job's own copies, with their keys,
/// so flag changes and deletions at the source still reach them (found with kill -9 on Dovecot:
/// they used to be recorded as "found at the destination" and left alone from then on).
#[tokio::test]
async fn copies_a_killed_run_did_not_record_are_still_the_jobs_own() {
    let inbox = FolderPath::inbox();
    let source = inbox_source(3, &["\\Seen"]);
    let destination = MemoryStore::new("destination");
    destination.crash_after_flush(2);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let checkpoint = Checkpoint::open(&state, "source", "destination").unwrap();
    let sync = CopyOptions { sync_deletions: true, ..options() };
    let mut crashed = destination.crash_signal();
    let no_events = EventSink::none();
    tokio::select! {
        _ = copy(&source, &destination, &sync, &checkpoint, &no_events) => panic!("the run should hang at the crash"),
        _ = crashed.recv() => {}
    }
    drop(checkpoint);
    destination.recover();
    assert_eq!(destination.contents(&inbox).len(), 3, "durable before the crash");

    let checkpoint = Checkpoint::open(&state, "source", "destination").unwrap();
    let resumed = run(&source, &destination, &checkpoint, &sync).await;
    assert_eq!((resumed.copied, resumed.failed), (0, 0), "{resumed:#?}");
    assert_eq!(destination.contents(&inbox).len(), 3);

    assert!(source.set_flags(&inbox, &SourceKey::from("1"), flags(&["\\Flagged"])));
    assert!(source.remove(&inbox, &SourceKey::from("2")));
    let delta = run(&source, &destination, &checkpoint, &sync).await;
    assert_eq!((delta.flags_updated, delta.removed), (1, 1), "{delta:#?}");
    let left = destination.contents(&inbox);
    assert_eq!(left.len(), 2);
    assert_eq!(left[0].1, flags(&["\\Flagged"]));
}

/// A folder whose revision is the one the last complete run left it at is skipped without being
/// listed, even with flag sync and deletion sync on; any change at the source, or a run that
/// carries more than the last one did, lists it again.
#[tokio::test]
async fn an_unchanged_folder_is_skipped_until_something_changes() {
    let inbox = FolderPath::inbox();
    let source = inbox_source(3, &[]);
    let destination = MemoryStore::new("destination");
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let first = run(&source, &destination, &checkpoint, &options()).await;
    assert_eq!((first.copied, first.folders[0].unchanged), (3, false));

    let again = run(&source, &destination, &checkpoint, &options()).await;
    assert!(again.folders[0].unchanged, "{again:#?}");
    assert_eq!((again.folders[0].listed, again.skipped), (0, 0));

    // A flag change at the source: listed, carried, then settled again.
    assert!(source.set_flags(&inbox, &SourceKey::from("2"), flags(&["\\Flagged"])));
    let changed = run(&source, &destination, &checkpoint, &options()).await;
    assert_eq!((changed.folders[0].unchanged, changed.flags_updated), (false, 1), "{changed:#?}");
    assert_eq!(changed.folders[0].listed, 3);
    assert!(run(&source, &destination, &checkpoint, &options()).await.folders[0].unchanged);

    // Deletions were not carried by the runs so far: the first run that carries them lists the
    // folder (a message deleted before it must go), the next one skips it again.
    assert!(source.remove(&inbox, &SourceKey::from("1")));
    let no_sync = run(&source, &destination, &checkpoint, &options()).await;
    assert_eq!((no_sync.folders[0].unchanged, no_sync.removed), (false, 0));
    let sync = CopyOptions { sync_deletions: true, ..options() };
    let removed = run(&source, &destination, &checkpoint, &sync).await;
    assert_eq!((removed.folders[0].unchanged, removed.removed), (false, 1), "{removed:#?}");
    assert!(run(&source, &destination, &checkpoint, &sync).await.folders[0].unchanged);

    // A new message.
    source.insert(&inbox, b"Subject: 3\r\n\r\nbody 3\r\n".to_vec(), Flags::empty(), None);
    let new = run(&source, &destination, &checkpoint, &sync).await;
    assert_eq!((new.folders[0].unchanged, new.copied), (false, 1));
    assert_eq!(destination.contents(&inbox).len(), 3);

    // A run that failed a message does not settle the folder: the next one tries again.
    source.insert(&inbox, b"Subject: 4\r\n\r\nbody 4\r\n".to_vec(), Flags::empty(), None);
    destination.fail_append(destination.append_count() + 1, mailmove_core::memory::Fault::Refuse);
    let failed = run(&source, &destination, &checkpoint, &sync).await;
    assert_eq!((failed.copied, failed.failed), (0, 1), "{failed:#?}");
    let retried = run(&source, &destination, &checkpoint, &sync).await;
    assert!(!retried.folders[0].unchanged, "{retried:#?}");
}

/// `dry_run` counts the flag updates and removals the delta would make, writes nothing, and the
/// real run then makes exactly those.
#[tokio::test]
async fn a_dry_run_counts_the_flag_updates_and_removals_of_the_delta() {
    let inbox = FolderPath::inbox();
    let source = inbox_source(6, &["\\Seen"]);
    let destination = MemoryStore::new("destination");
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let sync = CopyOptions { sync_deletions: true, ..options() };
    assert_eq!(run(&source, &destination, &checkpoint, &sync).await.copied, 6);

    // Two flag changes, three deletions (one of a message whose flags also changed), one new.
    assert!(source.set_flags(&inbox, &SourceKey::from("1"), flags(&["\\Flagged"])));
    assert!(source.set_flags(&inbox, &SourceKey::from("2"), flags(&["\\Seen", "$Later"])));
    for key in ["2", "3", "4"] {
        assert!(source.remove(&inbox, &SourceKey::from(key)));
    }
    source.insert(&inbox, b"Subject: 6\r\n\r\nbody 6\r\n".to_vec(), Flags::empty(), None);

    let dry = CopyOptions { dry_run: true, ..sync.clone() };
    let plan = run(&source, &destination, &checkpoint, &dry).await;
    assert_eq!((plan.planned, plan.planned_flag_updates, plan.planned_removals), (1, 1, 3), "{plan:#?}");
    assert_eq!((plan.copied, plan.flags_updated, plan.removed), (0, 0, 0));
    assert_eq!(destination.contents(&inbox).len(), 6, "a dry run changes nothing");
    // Without deletion sync, no removal is planned.
    let dry_no_deletions = CopyOptions { dry_run: true, ..options() };
    assert_eq!(run(&source, &destination, &checkpoint, &dry_no_deletions).await.planned_removals, 0);

    let delta = run(&source, &destination, &checkpoint, &sync).await;
    assert_eq!((delta.copied, delta.flags_updated, delta.removed), (1, 1, 3), "{delta:#?}");
    let after = run(&source, &destination, &checkpoint, &dry).await;
    assert_eq!((after.planned, after.planned_flag_updates, after.planned_removals), (0, 0, 0));
}

/// A folder deleted (or renamed) at the source since the last run is named in the report; with
/// `sync_deletions` the job's copies in it are removed, what the user filed there stays, and the
/// folder is then forgotten.
#[tokio::test]
async fn a_folder_gone_at_the_source_is_named_and_its_copies_removed() {
    let (inbox, projects) = (FolderPath::inbox(), FolderPath::parse("Projects"));
    let source = MemoryStore::new("source");
    for folder in [&inbox, &projects] {
        source.create(folder, None);
        for i in 0..2 {
            let body = format!("Subject: {folder} {i}\r\n\r\nbody\r\n");
            source.insert(folder, body.into_bytes(), Flags::empty(), None);
        }
    }
    let destination = MemoryStore::new("destination");
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    assert_eq!(run(&source, &destination, &checkpoint, &options()).await.copied, 4);

    assert!(source.delete_folder(&projects));
    destination.insert(
        &projects,
        b"Subject: filed by the user\r\n\r\nmine\r\n".to_vec(),
        Flags::empty(),
        None,
    );
    let gone = |report: &RunReport| -> Vec<(String, u64)> {
        report.folders.iter().filter(|f| f.gone).map(|f| (f.folder.clone(), f.removed)).collect()
    };

    let named = run(&source, &destination, &checkpoint, &options()).await;
    assert_eq!(gone(&named), [("Projects".to_string(), 0)], "{named:#?}");
    assert_eq!(destination.contents(&projects).len(), 3, "without sync_deletions nothing is removed");

    // Left out by the filters, it is not gone: just not selected.
    let only_inbox = CopyOptions {
        filter: mailmove_core::engine::MessageFilter { include: vec!["INBOX".into()], ..Default::default() },
        ..options()
    };
    assert!(gone(&run(&source, &destination, &checkpoint, &only_inbox).await).is_empty());

    let sync = CopyOptions { sync_deletions: true, ..options() };
    let dry = run(&source, &destination, &checkpoint, &CopyOptions { dry_run: true, ..sync.clone() }).await;
    assert_eq!(dry.planned_removals, 2, "{dry:#?}");
    let emptied = run(&source, &destination, &checkpoint, &sync).await;
    assert_eq!(gone(&emptied), [("Projects".to_string(), 2)], "{emptied:#?}");
    assert_eq!(emptied.removed, 2);
    let left = destination.contents(&projects);
    assert_eq!(left.len(), 1);
    assert!(left[0].0.starts_with(b"Subject: filed by the user"));
    // Forgotten: the next run has nothing to say of it.
    assert!(gone(&run(&source, &destination, &checkpoint, &sync).await).is_empty());
}

/// A destination that cannot update a stored message's flags (mbox): the flag changes made at the
/// source are named (counted, with a warning) on every run while they differ, never dropped
/// silently, and the folder is not taken as settled.
#[tokio::test]
async fn flag_changes_a_destination_cannot_carry_are_named() {
    let inbox = FolderPath::inbox();
    let source = inbox_source(3, &["\\Seen"]);
    let destination = MemoryStore::new("destination");
    let like_mbox = mailmove_core::SinkCapabilities::default().with_max_concurrency(8);
    destination.set_capabilities(mailmove_core::MailSource::capabilities(&destination), like_mbox);
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    assert_eq!(run(&source, &destination, &checkpoint, &options()).await.copied, 3);
    assert!(run(&source, &destination, &checkpoint, &options()).await.folders[0].unchanged);

    assert!(source.set_flags(&inbox, &SourceKey::from("2"), flags(&["\\Flagged"])));
    for _ in 0..2 {
        let report = run(&source, &destination, &checkpoint, &options()).await;
        assert_eq!((report.flags_updated, report.flags_not_carried), (0, 1), "{report:#?}");
        assert!(!report.folders[0].unchanged);
        assert!(report.warnings.iter().any(|w| w.contains("1 copies in INBOX keep flags")), "{report:#?}");
    }
    // Turned off, nothing is looked for.
    let off = CopyOptions { sync_flags: false, ..options() };
    assert_eq!(run(&source, &destination, &checkpoint, &off).await.flags_not_carried, 0);
}

/// A source that lists no INBOX (an unmounted Maildir root lists nothing) is not taken as one
/// whose folders were all deleted: with `sync_deletions` nothing is removed, and the run says why.
#[tokio::test]
async fn a_source_that_lists_nothing_removes_nothing() {
    let inbox = FolderPath::inbox();
    let source = inbox_source(3, &[]);
    let destination = MemoryStore::new("destination");
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let sync = CopyOptions { sync_deletions: true, ..options() };
    assert_eq!(run(&source, &destination, &checkpoint, &sync).await.copied, 3);
    assert!(source.delete_folder(&inbox));
    let empty = run(&source, &destination, &checkpoint, &sync).await;
    assert_eq!(empty.removed, 0, "{empty:#?}");
    assert!(empty.warnings.iter().any(|w| w.contains("lists no INBOX")), "{empty:#?}");
    assert_eq!(destination.contents(&inbox).len(), 3);
}
