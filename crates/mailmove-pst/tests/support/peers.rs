//! Two independent PST readers from Debian, run as subprocesses and reduced to one comparable
//! [`PeerView`]: `readpst` (package pst-utils, built on libpst) and `pffexport` (package pff-tools,
//! built on libpff). A missing tool, a non-zero exit or output that cannot be read makes the test
//! fail with a message naming the tool and the PST; nothing is ever skipped.
//!
//! How each peer's output is read, and where the two differ by construction:
//!
//! - **Which items.** Only mail: `readpst -t e` writes e-mail (IPM.Note…), reports (REPORT.IPM.…)
//!   and meeting requests (IPM.Schedule.Meeting…); the meeting requests are dropped here (they are
//!   recognised by the `text/calendar` part libpst generates for them). `pffexport` writes each item
//!   as a directory named after its kind (`Message00001`, `Meeting00001`, `Appointment00001`,
//!   `Contact00002`, …); only `MessageNNNNN` directories are read.
//! - **Which folders.** Paths are relative to the top of the personal folders (the IPM subtree):
//!   readpst names that directory after the store ("Personal Folders"), pffexport after the folder
//!   ("Top of Personal Folders", "Top of Outlook data file", …). Only folders holding at least one
//!   mail item are listed. pffexport's `.recovered` and `.orphans` trees (libpff's scan for deleted
//!   and unreferenced items, which readpst does not do) and the folders outside the top (Search
//!   Root, views, …) are not part of the view.
//! - **Sender.** readpst's `From:` carries PR_SENT_REPRESENTING_EMAIL_ADDRESS (the RFC 5322 From of
//!   the item), so pffexport's "Sent representing email address" is used, else its "Sender email
//!   address". When that address is not an SMTP address (an Exchange X.500 DN), libpst writes
//!   `From: <MAILER-DAEMON>` and keeps the address in `X-libpst-forensic-sender`, which is used.
//! - **Date.** pffexport gives the delivery time, else the client submit time. readpst exposes no
//!   delivery time: its `Date:` is the original transport header's, else PR_CLIENT_SUBMIT_TIME. The
//!   two agree on items whose delivery and submit times are equal (all of the sample corpus).
//! - **Attachments.** readpst: every direct part of the top multipart that has a
//!   Content-Disposition (its bodies have none), sized by decoding its base64. pffexport: the files
//!   of `Attachments/`, named `<index>_<long file name>` (the index is stripped), sized on disk. An
//!   attached item (embedded message) is [`EMBEDDED_ITEM`] with size 0 in both: readpst writes it
//!   as a `message/rfc822` part, pffexport as an `AttachmentNNNNN` directory, and neither form has a
//!   comparable name or size. Not normalised (no sample has them): pffexport names an attachment
//!   without a long file name `Attachment.txt` where readpst uses the short name or none, and it
//!   sanitises characters that cannot appear in a file name.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use mail_parser::{Encoding, Message, MessageParser, MimeHeaders};
use tempfile::TempDir;

/// One mail item as a peer reader saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeerMessage {
    /// The subject, decoded and trimmed.
    pub subject: String,
    /// The sender's e-mail address, lowercase (empty if none).
    pub sender: String,
    /// Delivery (or else submit) time, UNIX seconds, UTC.
    pub date: Option<i64>,
    /// (file name, decoded size in bytes) of each attachment, sorted.
    pub attachments: Vec<(String, u64)>,
}

/// A PST as a peer reader saw it: folder path (components joined with '/', relative to the top of
/// the personal folders, e.g. "Inbox" or "Recovered_Group2/Inbox") → its mail items, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerView {
    /// Folder path → its mail items, sorted; only folders holding at least one mail item.
    pub folders: BTreeMap<String, Vec<PeerMessage>>,
}

impl PeerView {
    /// The number of mail items in all folders.
    pub fn message_count(&self) -> usize {
        self.folders.values().map(Vec::len).sum()
    }

    fn add(&mut self, folder: String, message: PeerMessage) {
        self.folders.entry(folder).or_default().push(message);
    }

    fn sorted(mut self) -> Self {
        for messages in self.folders.values_mut() {
            for message in messages.iter_mut() {
                message.attachments.sort();
            }
            messages.sort();
        }
        self
    }
}

/// The name given to an attached item (an embedded message) in [`PeerMessage::attachments`],
/// with size 0: the peers have no comparable name or size for it.
pub const EMBEDDED_ITEM: &str = "<embedded item>";

/// The corpus directory: `$MAILMOVE_CORPUS/pst` if set, else `<workspace>/../shared/corpus/pst`.
pub fn corpus_pst_dir() -> PathBuf {
    match std::env::var_os("MAILMOVE_CORPUS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("pst"),
        _ => {
            let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            let workspace =
                crate_dir.ancestors().nth(2).expect("the crate sits two levels below the workspace");
            workspace.parent().expect("the workspace has a parent directory").join("shared/corpus/pst")
        }
    }
}

/// Fails the test: `tool` on `pst` went wrong in the way `what` says.
fn fail(tool: &str, pst: &Path, what: impl Display) -> ! {
    panic!("{tool} on {}: {what}", pst.display())
}

/// Runs `tool` with `args`, failing the test if it cannot start or exits non-zero.
fn run(tool: &str, pst: &Path, args: &[&OsStr]) {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| fail(tool, pst, format!("cannot run `{tool}` (is it installed?): {e}")));
    if !output.status.success() {
        fail(
            tool,
            pst,
            format!(
                "exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        );
    }
}

fn temp_dir(tool: &str, pst: &Path) -> TempDir {
    TempDir::new().unwrap_or_else(|e| fail(tool, pst, format!("cannot create a temporary directory: {e}")))
}

/// The entries of `dir` as (name, path, is a directory), sorted by name.
fn entries(tool: &str, pst: &Path, dir: &Path) -> Vec<(String, PathBuf, bool)> {
    let read =
        fs::read_dir(dir).unwrap_or_else(|e| fail(tool, pst, format!("cannot list {}: {e}", dir.display())));
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.unwrap_or_else(|e| fail(tool, pst, format!("cannot list {}: {e}", dir.display())));
        let path = entry.path();
        let file_type = entry
            .file_type()
            .unwrap_or_else(|e| fail(tool, pst, format!("cannot stat {}: {e}", path.display())));
        let name = entry
            .file_name()
            .into_string()
            .unwrap_or_else(|n| fail(tool, pst, format!("output name {n:?} is not UTF-8")));
        out.push((name, path, file_type.is_dir()));
    }
    out.sort();
    out
}

fn read(tool: &str, pst: &Path, path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| fail(tool, pst, format!("cannot read {}: {e}", path.display())))
}

// ---------------------------------------------------------------------------------------------
// readpst

/// What `readpst` (pst-utils) reads in `pst`.
pub fn readpst(pst: &Path) -> PeerView {
    const TOOL: &str = "readpst";
    let out = temp_dir(TOOL, pst);
    // -q quiet, -t e e-mail only, -e one RFC 822 file per message (`<n>.eml`, in a directory per
    // folder), -b no RTF body saved as an attachment.
    let args: [&OsStr; 8] = [
        "-q".as_ref(),
        "-t".as_ref(),
        "e".as_ref(),
        "-e".as_ref(),
        "-b".as_ref(),
        "-o".as_ref(),
        out.path().as_os_str(),
        pst.as_os_str(),
    ];
    run(TOOL, pst, &args);

    let mut view = PeerView::default();
    // The top level holds one directory per store, named after it ("Personal Folders").
    for (store, path, is_dir) in entries(TOOL, pst, out.path()) {
        if !is_dir {
            fail(TOOL, pst, format!("unexpected file {store:?} outside the store's directory"));
        }
        readpst_folder(pst, &path, &mut Vec::new(), &mut view);
    }
    view.sorted()
}

fn readpst_folder(pst: &Path, dir: &Path, folder: &mut Vec<String>, view: &mut PeerView) {
    const TOOL: &str = "readpst";
    for (name, path, is_dir) in entries(TOOL, pst, dir) {
        if is_dir {
            folder.push(name);
            readpst_folder(pst, &path, folder, view);
            folder.pop();
        } else if name
            .strip_suffix(".eml")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            if let Some(message) = readpst_message(pst, &path) {
                view.add(folder.join("/"), message);
            }
        } else {
            fail(TOOL, pst, format!("unexpected output file {}", path.display()));
        }
    }
}

/// One `<n>.eml` file written by readpst; `None` for a meeting request.
fn readpst_message(pst: &Path, path: &Path) -> Option<PeerMessage> {
    const TOOL: &str = "readpst";
    let bad = |what: &str| -> ! { fail(TOOL, pst, format!("{}: {what}", path.display())) };
    let bytes = read(TOOL, pst, path);
    let message = MessageParser::default().parse(&bytes).unwrap_or_else(|| bad("not an RFC 822 message"));
    if is_libpst_meeting_request(&message) {
        return None;
    }

    let subject = message.subject().unwrap_or_default().trim().to_string();

    let from = message.from().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default();
    let sender = if from.eq_ignore_ascii_case("MAILER-DAEMON") {
        // libpst's stand-in when the item's sender address is not an SMTP address (or is absent);
        // the address itself, if any, is kept in this header.
        message.header_raw("X-libpst-forensic-sender").unwrap_or_default().trim().to_lowercase()
    } else {
        from.trim().to_lowercase()
    };

    let date = match message.header_raw("Date") {
        None => None,
        Some(raw) => match message.date() {
            Some(date) => Some(date.to_timestamp()),
            None => bad(&format!("unreadable Date: {raw:?}")),
        },
    };

    let root = message.root_part();
    let Some(children) = root.sub_parts() else { bad("the top part is not multipart") };
    let mut attachments = Vec::new();
    for &id in children {
        let part = message.part(id).unwrap_or_else(|| bad(&format!("missing MIME part {id}")));
        if part.is_multipart() {
            // multipart/alternative holding the text and HTML bodies
            continue;
        }
        if part.content_disposition().is_none() {
            if part.is_content_type("message", "rfc822") {
                // an attached item, written inline as a nested message
                attachments.push((EMBEDDED_ITEM.to_string(), 0));
            }
            // else a body (text, HTML, report text)
            continue;
        }
        let name = part.attachment_name().unwrap_or_default().to_string();
        let size = if part.encoding == Encoding::Base64 {
            let start = part.raw_body_offset() as usize;
            let end = part.raw_end_offset() as usize;
            let raw = message.raw_message().get(start..end).unwrap_or_else(|| bad("MIME part out of bounds"));
            base64_decoded_len(raw).unwrap_or_else(|e| bad(&format!("attachment {name:?}: {e}")))
        } else {
            part.contents().len() as u64
        };
        attachments.push((name, size));
    }

    Some(PeerMessage { subject, sender, date, attachments })
}

/// Whether `message` is a meeting request as libpst writes it: with a `text/calendar` part it
/// generated itself (`PRODID:LibPST…`) from the item's appointment properties.
fn is_libpst_meeting_request(message: &Message<'_>) -> bool {
    message.parts.iter().any(|part| {
        part.is_content_type("text", "calendar")
            && part.text_contents().is_some_and(|text| text.contains("PRODID:LibPST"))
    })
}

/// The number of bytes `raw` (base64, with line breaks) decodes to.
fn base64_decoded_len(raw: &[u8]) -> Result<u64, String> {
    let mut symbols = 0u64;
    let mut padding = false;
    for &b in raw {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' if !padding => symbols += 1,
            b'=' => padding = true,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => return Err(format!("byte {b:#04x} in base64 data")),
        }
    }
    if symbols % 4 == 1 {
        return Err("truncated base64 data".to_string());
    }
    Ok(symbols * 6 / 8)
}

// ---------------------------------------------------------------------------------------------
// pffexport

/// What `pffexport` (pff-tools) reads in `pst`.
pub fn pffexport(pst: &Path) -> PeerView {
    const TOOL: &str = "pffexport";
    let out = temp_dir(TOOL, pst);
    let target = out.path().join("x");
    // -m all: allocated, orphan and recovered items (into x.export, x.orphans, x.recovered);
    // -f all: every body format; -t: the target's base name.
    let args: [&OsStr; 8] = [
        "-m".as_ref(),
        "all".as_ref(),
        "-f".as_ref(),
        "all".as_ref(),
        "-q".as_ref(),
        "-t".as_ref(),
        target.as_os_str(),
        pst.as_os_str(),
    ];
    run(TOOL, pst, &args);

    let export = out.path().join("x.export");
    if !export.is_dir() {
        fail(TOOL, pst, format!("no export directory {}", export.display()));
    }
    // The root folder holds the top of the personal folders (the IPM subtree), "Search Root" and
    // other folders outside it.
    let tops: Vec<_> = entries(TOOL, pst, &export)
        .into_iter()
        .filter(|(name, _, is_dir)| *is_dir && name.starts_with("Top of "))
        .collect();
    let [(_, top, _)] = tops.as_slice() else {
        let names: Vec<_> = entries(TOOL, pst, &export).into_iter().map(|(name, _, _)| name).collect();
        fail(TOOL, pst, format!("expected one \"Top of …\" folder in the export's root, found {names:?}"))
    };

    let mut view = PeerView::default();
    pffexport_folder(pst, top, &mut Vec::new(), &mut view);
    view.sorted()
}

fn pffexport_folder(pst: &Path, dir: &Path, folder: &mut Vec<String>, view: &mut PeerView) {
    const TOOL: &str = "pffexport";
    for (name, path, is_dir) in entries(TOOL, pst, dir) {
        if !is_dir {
            fail(TOOL, pst, format!("unexpected file {} in a folder", path.display()));
        }
        match pffexport_item_kind(pst, &name, &path) {
            Some("Message") => {
                let message = pffexport_message(pst, &path);
                view.add(folder.join("/"), message);
            }
            // appointment, contact, distribution list, meeting, task, note, …
            Some(_) => {}
            None => {
                folder.push(name);
                pffexport_folder(pst, &path, folder, view);
                folder.pop();
            }
        }
    }
}

/// The kind of the item exported as directory `path` ("Message" for `Message00001`), or `None`
/// if it is a folder. Items are named `<Kind>NNNNN` and hold files; folders hold only directories.
fn pffexport_item_kind<'n>(pst: &Path, name: &'n str, path: &Path) -> Option<&'n str> {
    let kind = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = name.len() - kind.len();
    if digits != 5 || kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let holds_files = entries("pffexport", pst, path).iter().any(|(_, _, is_dir)| !is_dir);
    holds_files.then_some(kind)
}

/// One `MessageNNNNN` directory written by pffexport.
fn pffexport_message(pst: &Path, dir: &Path) -> PeerMessage {
    const TOOL: &str = "pffexport";
    let headers_path = dir.join("OutlookHeaders.txt");
    let bad = |what: &str| -> ! { fail(TOOL, pst, format!("{}: {what}", headers_path.display())) };
    let headers = String::from_utf8(read(TOOL, pst, &headers_path)).unwrap_or_else(|_| bad("not UTF-8"));

    // Lines of "Name:<tabs>value"; the first line is "Message:".
    let mut fields = BTreeMap::new();
    for line in headers.lines() {
        if let Some((name, value)) = line.split_once(':') {
            fields.entry(name.trim()).or_insert(value.trim());
        }
    }
    let field = |name: &str| fields.get(name).copied().filter(|v| !v.is_empty());

    let subject = field("Subject").unwrap_or_default().to_string();
    let sender = field("Sent representing email address")
        .or_else(|| field("Sender email address"))
        .unwrap_or_default()
        .to_lowercase();
    let time = |name: &str| {
        field(name).and_then(|v| parse_pff_time(v).unwrap_or_else(|e| bad(&format!("{name}: {e}"))))
    };
    let date = time("Delivery time").or_else(|| time("Client submit time"));

    let mut attachments = Vec::new();
    let attachments_dir = dir.join("Attachments");
    if attachments_dir.exists() {
        for (name, path, is_dir) in entries(TOOL, pst, &attachments_dir) {
            if is_dir {
                // AttachmentNNNNN: an attached item, exported as a folder of items
                attachments.push((EMBEDDED_ITEM.to_string(), 0));
                continue;
            }
            // <1-based index, zero-padded to the width of the count>_<long file name>
            let file_name = name
                .split_once('_')
                .filter(|(index, _)| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
                .map(|(_, file_name)| file_name.to_string())
                .unwrap_or_else(|| {
                    fail(TOOL, pst, format!("attachment {} has no index prefix", path.display()))
                });
            let size = fs::metadata(&path)
                .unwrap_or_else(|e| fail(TOOL, pst, format!("cannot stat {}: {e}", path.display())))
                .len();
            attachments.push((file_name, size));
        }
    }

    PeerMessage { subject, sender, date, attachments }
}

/// A pffexport time, e.g. "Apr 29, 2007 22:27:33.593000000 UTC", as UNIX seconds (the fraction
/// dropped); `None` for an unset time ("Not set (0)").
fn parse_pff_time(value: &str) -> Result<Option<i64>, String> {
    if value.starts_with("Not set") {
        return Ok(None);
    }
    let bad = || format!("unreadable time {value:?}");
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [month, day, year, time, "UTC"] = parts.as_slice() else { return Err(bad()) };
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| m == month).ok_or_else(bad)? as i64 + 1;
    let day: i64 = day.strip_suffix(',').and_then(|d| d.parse().ok()).ok_or_else(bad)?;
    let year: i64 = year.parse().map_err(|_| bad())?;
    let seconds = time.split('.').next().unwrap_or_default();
    let hms: Vec<i64> = seconds.split(':').map(|n| n.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let [hour, minute, second] = hms.as_slice() else { return Err(bad()) };
    if !(1..=31).contains(&day) || *hour > 23 || *minute > 59 || *second > 60 {
        return Err(bad());
    }
    Ok(Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second))
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
