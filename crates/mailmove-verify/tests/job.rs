//! A verification that knows the job (`VerifyOptions::state`): after a cut-over, what happened at
//! the destination after the copy is information, what the copy left wrong stays a difference.

mod common;

use common::*;
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy as engine_copy, CopyOptions, EventSink, RetryPolicy};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Error, Flags, FolderPath, MailSink, MailSource};
use mailmove_verify::{
    Difference, FindingKind, Verifier, VerifyOptions, VerifyReport, EXIT_DIFFERENCES, EXIT_IDENTICAL,
};

/// The source of `common::source()`, copied into a fresh destination by the engine with a
/// checkpoint file (the job's state) in `dir`.
async fn copied_job(dir: &std::path::Path) -> (MemoryStore, MemoryStore, std::path::PathBuf) {
    let source = source();
    let destination = MemoryStore::new("destination");
    let state = dir.join("job.sqlite");
    let checkpoint =
        Checkpoint::open(&state, &MailSource::identity(&source), &MailSink::identity(&destination)).unwrap();
    let options = CopyOptions { retry: RetryPolicy::immediate(3), ..CopyOptions::default() };
    let report = engine_copy(&source, &destination, &options, &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!((report.copied, report.failed), (11, 0), "{report:#?}");
    (source, destination, state)
}

fn with_state(state: &std::path::Path) -> VerifyOptions {
    VerifyOptions { state: Some(state.to_path_buf()), ..VerifyOptions::default() }
}

/// The cut-over: a message delivered to the destination, a copy's flags changed there, and a
/// source message deleted without `--sync-deletions` (its copy is stale).
async fn after_the_switch(source: &MemoryStore, destination: &MemoryStore) {
    let inbox = FolderPath::inbox();
    destination.insert(&inbox, message("new", 70, 300), Flags::default(), date(30));
    let copy_of_1 = key_at(destination, "INBOX", 1).await;
    assert_eq!(flags_for(1), Flags::default());
    assert!(destination.set_flags(&inbox, &copy_of_1, Flags::from_imap_list(["\\Seen", "\\Flagged"])));
    let deleted = key_at(source, "INBOX", 3).await;
    assert!(source.remove(&inbox, &deleted));
}

fn subjects(findings: &[mailmove_verify::Finding]) -> Vec<&str> {
    findings.iter().filter_map(|finding| finding.subject.as_deref()).collect()
}

#[tokio::test]
async fn knowing_the_job_tells_arrivals_and_destination_flag_changes_from_differences() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination, state) = copied_job(dir.path()).await;
    assert!(verify(&source, &destination, with_state(&state)).await.identical);
    after_the_switch(&source, &destination).await;

    // Without the job: the new message and the stale copy are extra, the flags changed.
    let blind = verify(&source, &destination, VerifyOptions::default()).await;
    assert_eq!(
        (blind.counts.extra, blind.counts.changed, blind.counts.total()),
        (2, 1, 3),
        "{}",
        blind.human_summary()
    );
    assert_eq!((blind.counts.arrived, blind.counts.flags_changed_at_destination), (0, 0));
    assert_eq!(blind.state, None);

    // With it: one arrival and one flag change made at the destination (information); the stale
    // copy, which the job did make, stays extra.
    let known = verify(&source, &destination, with_state(&state)).await;
    let summary = known.human_summary();
    assert_eq!(known.counts.arrived, 1, "{summary}");
    assert_eq!(known.counts.flags_changed_at_destination, 1, "{summary}");
    assert_eq!((known.counts.extra, known.counts.changed, known.counts.total()), (1, 0, 1), "{summary}");
    assert_eq!(subjects(&known.arrived), ["new message 70"]);
    assert_eq!(known.arrived[0].kind, FindingKind::Arrived);
    assert_eq!(subjects(&known.extra), ["INBOX message 3"]);
    let flags = &known.flags_changed_at_destination[0];
    assert_eq!(flags.kind, FindingKind::FlagsChangedAtDestination);
    assert_eq!(flags.subject.as_deref(), Some("INBOX message 1"));
    assert_eq!(
        flags.differences,
        [Difference::Flags { source: String::new(), destination: "\\Seen \\Flagged".into() }]
    );
    // The same when every store spills to SQLite (the extras wait in one too).
    let mut spilling = with_state(&state);
    spilling.limits.spill_threshold = 0;
    let spilled = verify(&source, &destination, spilling).await;
    assert_eq!(spilled.counts, known.counts);
    assert_eq!((&spilled.arrived, &spilled.extra), (&known.arrived, &known.extra));
    let inbox = known.folders.iter().find(|folder| folder.destination == "INBOX").unwrap();
    assert_eq!((inbox.findings.arrived, inbox.findings.flags_changed_at_destination), (1, 1));
    assert_eq!(known.exit_code(), EXIT_DIFFERENCES);
    assert_eq!(known.state.as_deref(), Some(state.display().to_string().as_str()));
    for words in ["Arrived at the destination", "Flags changed at the destination", "known by its state file"]
    {
        assert!(summary.contains(words), "{words:?} not in {summary}");
    }

    // The stale copy removed (what `--sync-deletions` does): clean, with the information kept.
    let stale = key_at(&destination, "INBOX", 3).await;
    assert!(destination.remove(&FolderPath::inbox(), &stale));
    let clean = verify(&source, &destination, with_state(&state)).await;
    assert!(clean.identical, "{}", clean.human_summary());
    assert_eq!(clean.exit_code(), EXIT_IDENTICAL);
    assert_eq!((clean.counts.arrived, clean.counts.flags_changed_at_destination), (1, 1));
    let blind = verify(&source, &destination, VerifyOptions::default()).await;
    assert_eq!((blind.counts.extra, blind.counts.changed, blind.exit_code()), (1, 1, EXIT_DIFFERENCES));
}

#[tokio::test]
async fn flags_the_source_changed_since_the_copy_stay_changed_also_in_sample_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination, state) = copied_job(dir.path()).await;
    after_the_switch(&source, &destination).await;
    // At the source, after the copy: message 0 of Archive/2019 answered (no delta has run).
    let archive = FolderPath::parse("Archive/2019");
    let mut answered = flags_for(0);
    answered.answered = true;
    assert!(source.set_flags(&archive, &key_at(&source, "Archive/2019", 0).await, answered));

    let known = verify(&source, &destination, with_state(&state)).await;
    assert_eq!((known.counts.changed, known.counts.flags_changed_at_destination), (1, 1));
    assert_eq!(subjects(&known.changed), ["Archive/2019 message 0"]);

    // Sample mode (every message sampled): the same rule for what it reports, and no extras.
    let sample = VerifyOptions { sample: Some(100), seed: Some(1), ..with_state(&state) };
    let sampled = verify(&source, &destination, sample).await;
    assert_eq!((sampled.counts.changed, sampled.counts.flags_changed_at_destination), (1, 1));
    assert_eq!((sampled.counts.extra, sampled.counts.arrived), (0, 0));
}

#[tokio::test]
async fn the_new_counts_travel_in_json_and_old_reports_still_parse() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination, state) = copied_job(dir.path()).await;
    after_the_switch(&source, &destination).await;
    let report = verify(&source, &destination, with_state(&state)).await;
    let json: serde_json::Value = serde_json::from_str(&report.to_json_pretty()).unwrap();
    assert_eq!(json["counts"]["arrived"], 1);
    assert_eq!(json["counts"]["flags_changed_at_destination"], 1);
    assert_eq!(json["arrived"][0]["kind"], "arrived");
    assert_eq!(json["flags_changed_at_destination"][0]["kind"], "flags_changed_at_destination");

    // A report written before the job was known has none of these fields.
    let mut old = json.clone();
    for field in ["arrived", "flags_changed_at_destination", "state"] {
        old.as_object_mut().unwrap().remove(field);
        old["counts"].as_object_mut().unwrap().remove(field);
        for folder in old["folders"].as_array_mut().unwrap() {
            folder["findings"].as_object_mut().unwrap().remove(field);
        }
    }
    let parsed: VerifyReport = serde_json::from_value(old).unwrap();
    assert!(parsed.arrived.is_empty() && parsed.state.is_none());
    assert_eq!((parsed.counts.arrived, parsed.counts.extra), (0, 1));
}

#[tokio::test]
async fn another_jobs_state_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination, state) = copied_job(dir.path()).await;
    let elsewhere = MemoryStore::new("elsewhere");
    for (from, to) in [(&source, &elsewhere), (&elsewhere, &destination), (&destination, &source)] {
        let error =
            Verifier::new(from, to).options(with_state(&state)).run().await.expect_err("another job's file");
        assert!(matches!(error, Error::Config { .. }), "{error}");
        assert!(error.to_string().contains("belongs to another job"), "{error}");
    }
    let missing = dir.path().join("no-such.sqlite");
    let error = Verifier::new(&source, &destination).options(with_state(&missing)).run().await.unwrap_err();
    assert!(matches!(error, Error::Config { .. }) && error.to_string().contains("no state file"), "{error}");
}
