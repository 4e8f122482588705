//! The page in a real browser: headless Chromium opens pages rendered from reports the engine and
//! the verifier made, and the DOM it builds is read back: the verdict, the figures and the folder
//! rows must be the reports' numbers, and no script element may exist whatever the reports said.
//! It also prints each page to PDF (A4) and takes a screenshot for a person to look at, in
//! `target/report-screenshots/`.
//!
//! Chromium is required: without it these tests fail and say how to install it
//! (`scripts/chromium.sh install DIR`); they never pass by skipping.

mod common;

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailmove_core::engine::RunReport;
use mailmove_report::summaries::{AccountSummary, BatchSummary};
use mailmove_report::{render, PageMeta, ReportInput};
use mailmove_verify::VerifyReport;

/// How long one Chromium run may take before it is killed and the test fails.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// The headless browser.
struct Chromium {
    program: PathBuf,
}

impl Chromium {
    /// `$CHROMIUM`, else `chromium` or `chromium-browser` on the `PATH`; a failed test otherwise.
    fn find() -> Self {
        let named = std::env::var_os("CHROMIUM").map(PathBuf::from);
        let on_path = || {
            let path = std::env::var_os("PATH").unwrap_or_default();
            ["chromium", "chromium-browser"].iter().find_map(|name| {
                std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
            })
        };
        match named.filter(|program| program.is_file()).or_else(on_path) {
            Some(program) => Chromium { program },
            None => panic!(
                "headless Chromium is needed to test the HTML report and was not found (looked for $CHROMIUM, \
                 then chromium and chromium-browser on the PATH). Install it as root with \
                 `scripts/chromium.sh install DIR` (DIR keeps the apt log)."
            ),
        }
    }

    /// Runs Chromium headless on `page` with `arguments`, in a profile of its own under `work`;
    /// its standard output. Killed (with every process it started) after [`CHROMIUM_TIMEOUT`].
    fn run(&self, page: &Path, work: &Path, arguments: &[String]) -> Vec<u8> {
        let profile = tempfile::tempdir_in(work).unwrap();
        let mut child = Command::new(&self.program)
            .args([
                "--headless",
                // Root cannot use Chromium's sandbox, and tests run as root here.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(arguments)
            .arg(format!("file://{}", page.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group of its own, so that a timeout kills the browser's helpers too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", self.program.display()));
        let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let out = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            stdout.read_to_end(&mut bytes).map(|_| bytes)
        });
        let err = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            stderr.read_to_end(&mut bytes).map(|_| bytes)
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > CHROMIUM_TIMEOUT {
                let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
                let _ = child.wait();
                panic!("Chromium did not finish within {CHROMIUM_TIMEOUT:?} ({arguments:?}); killed");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (stdout, stderr) = (out.join().unwrap().unwrap(), err.join().unwrap().unwrap());
        assert!(
            status.success(),
            "Chromium {arguments:?} failed ({status}): {}",
            String::from_utf8_lossy(&stderr)
        );
        stdout
    }

    /// The DOM Chromium built from `page`, serialised.
    fn dom(&self, page: &Path, work: &Path) -> String {
        String::from_utf8(self.run(page, work, &["--dump-dom".into()])).expect("the DOM is UTF-8")
    }

    /// A screenshot of the page's first A4 height at 150 dpi-like size, as PNG at `to`.
    fn screenshot(&self, page: &Path, work: &Path, to: &Path) {
        self.run(page, work, &[format!("--screenshot={}", to.display()), "--window-size=1240,1754".into()]);
        let png =
            std::fs::read(to).unwrap_or_else(|error| panic!("no screenshot at {}: {error}", to.display()));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{} is not a picture",
            to.display()
        );
    }

    /// The page printed to PDF at `to`; its bytes.
    fn pdf(&self, page: &Path, work: &Path, to: &Path) -> Vec<u8> {
        self.run(page, work, &[format!("--print-to-pdf={}", to.display()), "--no-pdf-header-footer".into()]);
        std::fs::read(to).unwrap_or_else(|error| panic!("no PDF at {}: {error}", to.display()))
    }
}

/// Where the screenshots go for review: `target/report-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target directory").to_path_buf();
    let dir = target.join("report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Says where a file for review is, past the test harness's capture of `println!`.
fn announce(what: &str, path: &Path) {
    let _ = writeln!(std::io::stderr(), "{what}: {}", path.display());
}

/// Renders `inputs`, opens the page in Chromium and returns its DOM; leaves a screenshot, the
/// page and its PDF in the review directory under `name`, and checks the PDF is A4.
fn open(chromium: &Chromium, name: &str, inputs: &[ReportInput]) -> String {
    let meta = PageMeta {
        title: format!("mailmove report: {name}"),
        generated_at: Some("2030-01-01 12:00 UTC".into()),
        generator: Some("mailmove-report tests".into()),
    };
    let work = tempfile::tempdir().unwrap();
    let page = work.path().join(format!("{name}.html"));
    std::fs::write(&page, render(inputs, &meta)).unwrap();
    let dom = chromium.dom(&page, work.path());
    let review = screenshot_dir();
    let shot = review.join(format!("{name}.png"));
    chromium.screenshot(&page, work.path(), &shot);
    let pdf = chromium.pdf(&page, work.path(), &review.join(format!("{name}.pdf")));
    std::fs::copy(&page, review.join(format!("{name}.html"))).unwrap();
    announce("screenshot for review", &shot);
    // A4 is 595 × 842 points; Chromium writes the box with its own rounding.
    let text = String::from_utf8_lossy(&pdf);
    assert!(text.contains("/MediaBox [0 0 594.9") && text.contains(" 841.9"), "the PDF's pages are not A4");
    dom
}

/// The part of the DOM that is the section with `data-kind="kind"`, the `nth` of its kind.
fn section<'a>(dom: &'a str, kind: &str, nth: usize) -> &'a str {
    let start = dom.match_indices(&format!("data-kind=\"{kind}\"")).nth(nth).map(|(at, _)| at);
    let start = start.unwrap_or_else(|| panic!("no section {kind} #{nth}"));
    let end = dom[start + 1..].find("<section class=\"report").map_or(dom.len(), |at| start + 1 + at);
    &dom[start..end]
}

/// The text of the first element carrying `attribute` (`data-figure="copied"`).
fn text_of<'a>(html: &'a str, attribute: &str) -> &'a str {
    let at = html.find(attribute).unwrap_or_else(|| panic!("no element with {attribute}"));
    let open = at + html[at..].find('>').unwrap();
    &html[open + 1..open + html[open..].find('<').unwrap()]
}

/// The number an element shows, read as a person reads it (digits only).
fn number(html: &str, attribute: &str) -> u64 {
    let digits: String = text_of(html, attribute).chars().filter(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("{attribute} shows no number: {:?}", text_of(html, attribute)))
}

fn check_copy(dom: &str, report: &RunReport) {
    assert_eq!(text_of(dom, "data-figure=\"verdict\""), format!("{} failed", report.failed));
    assert!(dom.contains("data-verdict=\"failed\""));
    for (key, value) in [("copied", report.copied), ("skipped", report.skipped), ("failed", report.failed)] {
        assert_eq!(number(dom, &format!("data-figure=\"{key}\"")), value, "{key}");
    }
    assert_eq!(dom.matches(" data-folder=").count(), report.folders.len(), "a row per folder");
    for folder in &report.folders {
        let row = &dom[dom.find(&format!("data-folder=\"{}\"", folder.folder)).expect("the folder's row")..];
        assert_eq!(number(row, "data-col=\"copied\""), folder.copied, "{}", folder.folder);
        assert_eq!(number(row, "data-col=\"failed\""), folder.failed, "{}", folder.folder);
        assert_eq!(
            number(row, "data-col=\"destination\""),
            folder.copied + folder.skipped,
            "{}",
            folder.folder
        );
    }
    let failures = &dom[dom.find("data-list=\"failures\"").expect("the failures")..];
    assert_eq!(number(failures, "data-count="), report.failures.len() as u64);
    assert!(dom.contains("data-chart=\"throughput\""), "the timeline is drawn");
}

fn check_verify(dom: &str, report: &VerifyReport, missing: u64) {
    assert_eq!(report.counts.missing, missing, "the verification found what the copy lost");
    assert_eq!(text_of(dom, "data-figure=\"verdict\""), format!("{missing} differ"));
    assert_eq!(number(dom, "data-figure=\"missing\""), missing);
    let at_source: u64 = report.folders.iter().map(|folder| folder.source_messages).sum();
    assert_eq!(number(dom, "data-figure=\"source_messages\""), at_source);
    assert_eq!(at_source, common::MESSAGES);
    assert_eq!(dom.matches(" data-folder=").count(), report.folders.len());
    for folder in &report.folders {
        let row =
            &dom[dom.find(&format!("data-folder=\"{}\"", folder.destination)).expect("the folder's row")..];
        assert_eq!(number(row, "data-col=\"source\""), folder.source_messages, "{}", folder.destination);
        assert_eq!(
            number(row, "data-col=\"destination\""),
            folder.destination_messages,
            "{}",
            folder.destination
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_and_its_verification_read_the_same_in_a_browser() {
    let chromium = Chromium::find();
    let (copy, destination) = common::copy_with_failures().await;
    let verification = common::verification(&destination).await;
    assert!(copy.failed > 0, "the injected refusals failed: {:?}", copy.failures);
    let inputs =
        [ReportInput::run(copy.clone()).named("ana"), ReportInput::verify(verification.clone()).named("ana")];
    let dom = open(&chromium, "copy-and-verification", &inputs);
    assert!(!dom.contains("<script"), "no script in the DOM");
    check_copy(section(&dom, "copy", 0), &copy);
    check_verify(section(&dom, "verify", 0), &verification, copy.failed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_with_hostile_names_builds_no_script_in_a_browser() {
    let chromium = Chromium::find();
    let (copy, _) = common::copy_with_failures().await;
    let hostile = common::hostile_copy().await;
    let summary = BatchSummary {
        accounts: 2,
        complete: 0,
        incomplete: 2,
        rows: [("ana", &copy), ("<b>eve</b>", &hostile)]
            .iter()
            .map(|(name, report)| AccountSummary {
                name: name.to_string(),
                source: report.source.clone(),
                destination: report.destination.clone(),
                status: "failures".into(),
                copied: report.copied,
                skipped: report.skipped,
                failed: report.failed,
                bytes_copied: report.bytes_copied,
                duration_secs: report.duration_secs,
                ..AccountSummary::default()
            })
            .collect(),
        ..BatchSummary::default()
    };
    let inputs = [
        ReportInput::batch(summary),
        ReportInput::run(copy).named("ana"),
        ReportInput::run(hostile.clone()).named("<b>eve</b>"),
    ];
    let dom = open(&chromium, "batch", &inputs);
    assert!(
        !dom.to_ascii_lowercase().contains("<script"),
        "the hostile folder's name built no script element"
    );
    assert!(!dom.contains("<b>eve</b>"), "the hostile account's name built no element");
    let batch = section(&dom, "batch", 0);
    assert_eq!(text_of(batch, "data-figure=\"verdict\""), "2 of 2 accounts incomplete");
    assert!(batch.contains("<a href=\"#report-2\">ana</a>"));
    let eve = section(&dom, "copy", 1);
    let folder = &hostile.folders[0].folder;
    assert_eq!(folder, "<script>alert(1)</script>");
    assert!(eve.contains("data-folder=\"&lt;script&gt;alert(1)&lt;/script&gt;\""), "the name, as text");
    assert!(eve.contains("data-timeline=\"nothing-copied\""), "no chart of nothing");
}
