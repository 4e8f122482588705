//! The page as text: escaping of hostile input, the verdict's words, the figures, the caps, the
//! page's self-containment and print rules, and how files are recognised.

mod common;

use mailmove_core::engine::{FolderReport, MessageFailure, MessageNote, RunOutcome, RunReport};
use mailmove_report::summaries::{AccountSummary, BatchSummary, FleetStatus};
use mailmove_report::{
    read_report, read_reports, render, PageMeta, Report, ReportError, ReportInput, MAX_LISTED,
};

fn page_of(report: RunReport) -> String {
    render(&[ReportInput::run(report)], &PageMeta::new("test"))
}

/// A report of a run that ended as `outcome`, without counts.
fn report(outcome: RunOutcome) -> RunReport {
    let error = mailmove_core::Error::connection("unused");
    let mut report =
        RunReport::failed("maildir:/old".into(), "imaps://ana@new.example/".into(), false, &error);
    report.outcome = outcome;
    report.error = None;
    report
}

fn note(folder: &str, reason: &str) -> MessageNote {
    MessageNote {
        folder: folder.into(),
        source_key: "7".into(),
        message_id: Some("m@x".into()),
        size: Some(10),
        reason: reason.into(),
    }
}

fn failure(folder: &str, reason: &str) -> MessageFailure {
    MessageFailure {
        folder: folder.into(),
        source_key: "9".into(),
        message_id: None,
        size: Some(2_000),
        kind: "refused".into(),
        reason: reason.into(),
        transient: false,
    }
}

/// The text of the element that carries `attribute` (`data-figure="copied"`), from `from` on.
fn text_of<'a>(html: &'a str, attribute: &str) -> &'a str {
    let at = html.find(attribute).unwrap_or_else(|| panic!("no {attribute} in the page"));
    let open = at + html[at..].find('>').expect("the tag ends");
    let close = open + html[open..].find('<').expect("an end tag follows");
    &html[open + 1..close]
}

/// The `data-value` of the figure `key`.
fn figure_value(html: &str, key: &str) -> String {
    let attribute = format!("data-figure=\"{key}\" data-value=\"");
    let at = html.find(&attribute).unwrap_or_else(|| panic!("no figure {key}")) + attribute.len();
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

#[tokio::test]
async fn a_report_s_text_comes_out_escaped() {
    let report = common::hostile_copy().await;
    assert_eq!(report.failed, 1, "the destination refused the hostile message: {:?}", report.failures);
    let message_id = report.failures[0].message_id.clone();
    let page = page_of(report);
    assert!(!page.to_ascii_lowercase().contains("<script"), "no script element, whatever the folder's name");
    assert!(!page.contains("<img"), "no image element from the source's name");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the folder's name is shown, escaped");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"), "the source's name is shown, escaped");
    let message_id = message_id.expect("the failure names the Message-ID");
    assert!(message_id.contains("x\"onmouseover=alert(2)&y"), "{message_id}");
    assert!(page.contains("x&quot;onmouseover=alert(2)&amp;y"), "the Message-ID is shown, escaped");
    assert!(!page.contains("\"onmouseover"), "no attribute is opened by a report's text");
    assert!(
        page.contains("data-folder=\"&lt;script&gt;alert(1)&lt;/script&gt;\""),
        "attributes are escaped too"
    );
}

#[test]
fn invisible_and_reordering_characters_are_shown() {
    let mut report = report(RunOutcome::CompletedWithFailures);
    report.failed = 1;
    report.failures = vec![failure("Inbox\u{1b}[2J", "refused: invoice\u{202e}fdp.exe")];
    let page = page_of(report);
    assert!(!page.contains(['\u{1b}', '\u{202e}']), "no raw control or bidirectional character");
    assert!(page.contains("Inbox\\u{1b}[2J"), "the escape character is named");
    assert!(page.contains("invoice\\u{202e}fdp.exe"), "the override is named");
}

#[test]
fn the_verdict_comes_first_in_words() {
    let exact = report(RunOutcome::Complete);
    let mut not_exact = report(RunOutcome::Complete);
    not_exact.altered = vec![note("INBOX", "8-bit header bytes replaced"), note("INBOX", "X-UID added")];
    not_exact.damaged = vec![note("Old", "From line guessed")];
    let mut failed = report(RunOutcome::CompletedWithFailures);
    failed.failed = 4;
    failed.failures = (0..4).map(|_| failure("INBOX", "too big")).collect();
    let mut paused = report(RunOutcome::Paused);
    paused.paused_reason = Some("quota exceeded at the destination".into());
    let error = mailmove_core::Error::connection("connection refused by old.example");
    let stopped = RunReport::failed("maildir:/old".into(), "imaps://new/".into(), false, &error);

    let cases = [
        (exact, "identical", "Identical".to_string()),
        (not_exact, "not-exact", "Complete, but 3 not exact (2 altered, 1 damaged)".to_string()),
        (failed, "failed", "4 failed".to_string()),
        (paused, "paused", "Paused".to_string()),
        (stopped, "failed-run", "Failed run".to_string()),
    ];
    for (report, key, headline) in cases {
        let reason = report.paused_reason.clone().or(report.error.clone());
        let page = page_of(report);
        let main = &page[page.find("<main>").expect("a main element")..];
        let banner = main.find("class=\"banner").expect("a banner");
        assert!(
            main[..banner].find("data-figure=").is_none() && main[..banner].find("<table").is_none(),
            "{key}: the verdict comes before any figure or table"
        );
        assert!(main.contains(&format!("data-verdict=\"{key}\"")), "{key}");
        assert_eq!(text_of(main, "data-figure=\"verdict\""), headline);
        if let Some(reason) = reason {
            assert!(main.contains(&reason), "{key}: the reason is said: {reason}");
        }
    }
}

#[tokio::test]
async fn the_figures_and_folders_are_the_report_s() {
    let (report, _) = common::copy_with_failures().await;
    assert_eq!(report.outcome, RunOutcome::CompletedWithFailures);
    let page = page_of(report.clone());
    for (key, value) in [("copied", report.copied), ("skipped", report.skipped), ("failed", report.failed)] {
        assert_eq!(figure_value(&page, key), value.to_string(), "{key}");
        assert_eq!(digits(text_of(&page, &format!("data-figure=\"{key}\""))), value.to_string(), "{key}");
    }
    assert_eq!(figure_value(&page, "bytes_copied"), report.bytes_copied.to_string());
    assert_eq!(text_of(&page, "data-figure=\"verdict\""), format!("{} failed", report.failed));
    assert_eq!(page.matches(" data-folder=").count(), report.folders.len());
    for folder in &report.folders {
        let row =
            &page[page.find(&format!("data-folder=\"{}\"", folder.folder)).expect("a row per folder")..];
        assert_eq!(
            digits(text_of(row, "data-col=\"copied\"")),
            folder.copied.to_string(),
            "{}",
            folder.folder
        );
        assert_eq!(
            digits(text_of(row, "data-col=\"failed\"")),
            folder.failed.to_string(),
            "{}",
            folder.folder
        );
    }
    let failures = &page[page.find("data-list=\"failures\"").expect("the failures listed")..];
    for failure in &report.failures {
        assert!(failures.contains(&failure.reason), "{failure:?}");
    }
}

#[test]
fn long_lists_are_capped_and_say_how_many_more() {
    let mut report = report(RunOutcome::CompletedWithFailures);
    let total = MAX_LISTED + 734;
    report.failed = total as u64;
    report.failures = (0..total).map(|i| failure("INBOX", &format!("refused number {i}"))).collect();
    report.folders = (0..MAX_LISTED + 3)
        .map(|i| FolderReport {
            folder: format!("F{i}"),
            destination: format!("F{i}"),
            ..FolderReport::default()
        })
        .collect();
    let page = page_of(report);
    let failures = &page[page.find("data-list=\"failures\"").unwrap()..];
    let failures = &failures[..failures.find("</table>").unwrap()];
    assert_eq!(failures.matches("refused number").count(), MAX_LISTED);
    assert!(
        failures.contains(&format!("… and {} more (see the JSON)", 734)),
        "{}",
        &failures[failures.len() - 300..]
    );
    assert!(page.contains("… and 3 more (see the JSON)"), "the folders are capped too");
}

#[test]
fn the_page_is_self_contained_and_prints_on_a4() {
    let mut report = report(RunOutcome::Complete);
    report.warnings = vec!["see https://example.invalid/help".into()];
    let page = page_of(report);
    assert!(page.starts_with("<!DOCTYPE html>"));
    for forbidden in
        ["<script", "<link", "<img", "<iframe", "<object", "src=", "url(", "@import", "@font-face"]
    {
        assert!(!page.contains(forbidden), "{forbidden} in the page");
    }
    for (at, _) in page.match_indices("href=\"") {
        assert!(page[at + 6..].starts_with('#'), "a link outside the page: {}", &page[at..at + 40]);
    }
    assert!(page.contains("http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'"));
    assert!(page.contains("@page { size: A4"));
    assert!(page.contains("break-inside: avoid"));
}

#[test]
fn the_timeline_is_drawn_or_its_absence_said() {
    let page = page_of(report(RunOutcome::Complete));
    assert!(page.contains("data-timeline=\"absent\""));
    // The timeline as the engine writes it; built from JSON since it is the format that matters.
    let mut json = serde_json::to_value(report(RunOutcome::Complete)).unwrap();
    json["timeline"] = serde_json::json!([
        { "secs": 0.0, "copied": 0, "bytes": 0 },
        { "secs": 2.0, "copied": 10, "bytes": 4000000 },
        { "secs": 4.0, "copied": 12, "bytes": 5000000 }
    ]);
    json["tool"] = serde_json::json!({ "version": "9.9.9", "command": ["mailmove", "copy", "maildir:/a b", "--map", "<x>=y"] });
    let page = page_of(serde_json::from_value(json).unwrap());
    assert!(page.contains("data-chart=\"copied\" data-points=\"3\""));
    assert!(page.contains("peak 2.0 MB/s"), "the fastest interval: 4 MB in 2 s");
    assert_eq!(text_of(&page, "data-figure=\"version\""), "9.9.9");
    assert_eq!(text_of(&page, "data-figure=\"command\""), "mailmove copy 'maildir:/a b' --map '&lt;x&gt;=y'");
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn files_are_recognised_by_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (run, destination) = common::copy_with_failures().await;
    let verification = common::verification(&destination).await;
    let json = serde_json::to_string_pretty(&run).unwrap();
    let input = read_report(&write(dir.path(), "ana.json", &json)).unwrap();
    assert_eq!(input.name.as_deref(), Some("ana"));
    // As serde reads it (a float read back from JSON may differ in its last bit from the one written).
    assert_eq!(input.report, Report::Run(Box::new(serde_json::from_str(&json).unwrap())));
    let verify_path = write(dir.path(), "v.json", &verification.to_json_pretty());
    assert!(matches!(read_report(&verify_path).unwrap().report, Report::Verify(_)));
    // What `verify --report` writes when an error stopped it.
    let failed = r#"{"outcome":"failed","identical":false,"complete":false,"source":"a","destination":"b","error":"no route","started_at":"x"}"#;
    let failed = read_report(&write(dir.path(), "f.json", failed)).unwrap();
    assert!(matches!(failed.report, Report::FailedVerify(ref f) if f.error == "no route"));
    // `copy --json`: events, then the report last.
    let lines =
        format!("{{\"event\":\"run_started\",\"folders\":6}}\n{}\n", serde_json::to_string(&run).unwrap());
    assert!(matches!(read_report(&write(dir.path(), "l.jsonl", &lines)).unwrap().report, Report::Run(_)));
    let status = serde_json::to_string(&FleetStatus { run: "r".into(), ..FleetStatus::default() }).unwrap();
    assert!(matches!(
        read_report(&write(dir.path(), "s.json", &status)).unwrap().report,
        Report::FleetStatus(_)
    ));

    let unknown = read_report(&write(dir.path(), "u.json", r#"{"hello": 1}"#)).unwrap_err();
    assert!(matches!(unknown, ReportError::UnknownKind { .. }) && unknown.is_wrong_file(), "{unknown}");
    let not_json = read_report(&write(dir.path(), "n.json", "<html>")).unwrap_err();
    assert!(matches!(not_json, ReportError::NotJson { .. }), "{not_json}");
    let invalid =
        read_report(&write(dir.path(), "i.json", r#"{"outcome":"complete","copied":"x","folders":[]}"#));
    assert!(matches!(invalid, Err(ReportError::Invalid { kind: "copy report", .. })), "{invalid:?}");
    let missing = read_report(&dir.path().join("absent.json")).unwrap_err();
    assert!(matches!(missing, ReportError::Read { .. }) && !missing.is_wrong_file());
}

#[test]
fn the_fleet_status_is_read_as_the_fleet_writes_it() {
    // Every field the fleet writes is one the page reads, and none is renamed.
    let mut written =
        mailmove_fleet::status::RunStatus { run: "wave-1".into(), accounts: 3, ..Default::default() };
    written.states.insert("failed".into(), 1);
    written.failed_by_class.insert("auth".into(), 1);
    written.eta_secs = Some(30.0);
    let json = serde_json::to_value(&written).unwrap();
    let read: FleetStatus = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&read).unwrap(), json);
    let page = render(&[ReportInput::fleet_status(read)], &PageMeta::default());
    assert_eq!(text_of(&page, "data-figure=\"verdict\""), "1 of 3 accounts failed");
    assert!(page.contains("<code>auth</code>"));
}

fn row(name: &str, status: &str, damaged: u64, failed: u64) -> AccountSummary {
    AccountSummary {
        name: name.into(),
        status: status.into(),
        damaged,
        failed,
        copied: 5,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_batch_summary_brings_its_accounts_and_its_verdict_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let (failed_run, _) = common::copy_with_failures().await;
    write(dir.path(), "bob.json", &serde_json::to_string(&failed_run).unwrap());
    let rows = vec![
        row("ana", "complete", 0, 0),
        row("bob", "failures", 0, failed_run.failed),
        row("eve", "complete", 1, 0),
    ];
    let summary = BatchSummary { accounts: 3, complete: 2, incomplete: 1, rows, ..Default::default() };
    let summary_path = write(dir.path(), "summary.json", &serde_json::to_string(&summary).unwrap());

    let inputs = read_reports(&[summary_path]).unwrap();
    assert_eq!(
        inputs.len(),
        2,
        "the summary, then bob's report found beside it (ana's and eve's are absent)"
    );
    assert_eq!(inputs[1].name.as_deref(), Some("bob"));
    let page = render(&inputs, &PageMeta::default());
    assert_eq!(
        text_of(&page, "data-figure=\"verdict\""),
        "1 of 3 accounts incomplete",
        "the batch's verdict first"
    );
    assert!(page.contains("<a href=\"#report-2\">bob</a>"), "bob's row links to his section");
    for (account, verdict) in [("ana", "identical"), ("bob", "failed"), ("eve", "not-exact")] {
        assert!(
            page.contains(&format!("data-account=\"{account}\" data-verdict=\"{verdict}\"")),
            "{account}"
        );
    }
}

#[test]
fn copies_given_without_a_summary_get_the_batch_s_overview() {
    let mut not_exact = report(RunOutcome::Complete);
    not_exact.altered = vec![note("INBOX", "changed")];
    let inputs = [
        ReportInput::run(report(RunOutcome::Complete)).named("ana"),
        ReportInput::run(not_exact).named("eve"),
    ];
    let page = render(&inputs, &PageMeta::default());
    assert_eq!(text_of(&page, "data-figure=\"verdict\""), "Complete, but 1 of 2 accounts not exact");
    assert!(page.find("data-kind=\"batch\"").unwrap() < page.find("data-kind=\"copy\"").unwrap());
}

#[tokio::test]
async fn a_dry_run_says_what_would_be_copied() {
    let options = mailmove_core::engine::CopyOptions { dry_run: true, ..Default::default() };
    let destination = mailmove_core::memory::MemoryStore::new("destination");
    let report = mailmove_core::engine::Copier::new(common::mailbox(), destination)
        .options(options)
        .run()
        .await
        .unwrap();
    assert_eq!(report.planned, common::MESSAGES);
    let page = page_of(report.clone());
    assert!(page.contains("data-verdict=\"dry-run\""));
    assert_eq!(figure_value(&page, "planned"), report.planned.to_string());
    assert_eq!(figure_value(&page, "planned_bytes"), report.planned_bytes.to_string());
    for folder in &report.folders {
        let row =
            &page[page.find(&format!("data-folder=\"{}\"", folder.folder)).expect("a row per folder")..];
        assert_eq!(
            digits(text_of(row, "data-col=\"planned\"")),
            folder.planned.to_string(),
            "{}",
            folder.folder
        );
    }
}
