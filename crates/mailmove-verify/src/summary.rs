//! The human summary of a [`VerifyReport`]: a per-folder table, then the findings (capped).

use std::fmt::Write;

use mailmove_core::headers8bit;

use crate::report::{Difference, Finding, FindingKind, FolderVerdict, VerifyReport};

/// Findings of each kind listed in the summary before "and N more".
pub const SUMMARY_LISTED: usize = 20;

/// Widest folder column before names are shortened.
const FOLDER_COLUMN_MAX: usize = 48;

impl VerifyReport {
    /// A plain-text summary for people: the verdict, a table of counts and bytes on each side per
    /// folder, then each kind of finding (at most [`SUMMARY_LISTED`] of each, then "and N more").
    pub fn human_summary(&self) -> String {
        let mut out = String::new();
        let verdict = if !self.complete {
            "INCOMPLETE (some folders could not be verified)"
        } else if self.identical {
            "IDENTICAL"
        } else {
            "DIFFERENCES FOUND"
        };
        let _ = writeln!(out, "Verification ({} mode): {verdict}", self.mode);
        let _ = writeln!(out, "  source:      {}", self.source);
        let _ = writeln!(out, "  destination: {}", self.destination);
        let _ = writeln!(out, "  compared:    {}", self.compared_text());
        if let Some(sample) = &self.sampled {
            let _ = writeln!(
                out,
                "  sample:      {} messages checked (up to {} per source folder, seed {}); \
                 extra messages and duplicates not looked for",
                sample.checked, sample.per_folder, sample.seed
            );
        }
        if self.counts.altered > 0 {
            let _ = writeln!(
                out,
                "  altered:     {} altered at store (same Message-ID, different content)",
                self.counts.altered
            );
        }
        if self.counts.transformed > 0 {
            let _ = writeln!(
                out,
                "  transformed: {} stored under the named transform {}",
                self.counts.transformed,
                headers8bit::NAME
            );
        }
        if let Some(state) = &self.state {
            let _ = writeln!(out, "  job:         known by its state file {state}");
        }
        if self.counts.arrived > 0 {
            let _ = writeln!(
                out,
                "  arrived:     {} at the destination only, not copied by this job (delivered after the \
                 switch or filed there): information, not differences",
                self.counts.arrived
            );
        }
        if self.counts.flags_changed_at_destination > 0 {
            let _ = writeln!(
                out,
                "  flags:       {} copies with flags changed at the destination after the copy: \
                 information, not differences",
                self.counts.flags_changed_at_destination
            );
        }
        if self.counts.set_aside > 0 {
            let _ = writeln!(
                out,
                "  set aside:   {} refused by the destination and stored in the side store by the job: \
                 information, not differences",
                self.counts.set_aside
            );
        }
        if self.truncated {
            let _ =
                writeln!(out, "  note:        finding lists in the JSON report are capped; counts are exact");
        }
        let _ = writeln!(out, "  duration:    {:.1} s", self.duration_secs);
        out.push('\n');
        self.write_table(&mut out);
        for kind in [
            FindingKind::Missing,
            FindingKind::Extra,
            FindingKind::Changed,
            FindingKind::Altered,
            FindingKind::Duplicate,
            FindingKind::Unreadable,
            FindingKind::Arrived,
            FindingKind::FlagsChangedAtDestination,
            FindingKind::SetAside,
        ] {
            self.write_findings(&mut out, kind);
        }
        let errors: Vec<&FolderVerdict> =
            self.folders.iter().filter(|folder| folder.error.is_some()).collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "\nFolders not verified completely ({}):", errors.len());
            for folder in errors {
                let _ =
                    writeln!(out, "  {}: {}", folder_label(folder), folder.error.as_deref().unwrap_or(""));
            }
        }
        out
    }

    fn compared_text(&self) -> String {
        let mut parts = vec![match self.mode {
            crate::VerifyMode::Strict => "content (line endings normalised)",
            crate::VerifyMode::Headers => "Message-ID/Date/From/Subject, then content",
        }
        .to_string()];
        if self.compared.flags {
            parts.push(if self.compared.keywords { "flags with keywords" } else { "flags" }.into());
        }
        if self.compared.internal_dates {
            let tolerance = self.compared.date_tolerance_ms;
            parts.push(if tolerance == 0 {
                "internal dates".into()
            } else {
                format!("internal dates (±{} s)", tolerance as f64 / 1000.0)
            });
        }
        parts.join(", ")
    }

    fn write_table(&self, out: &mut String) {
        let labels: Vec<String> = self.folders.iter().map(folder_label).collect();
        let width =
            labels.iter().map(|label| label.chars().count()).max().unwrap_or(0).clamp(6, FOLDER_COLUMN_MAX);
        let _ = writeln!(
            out,
            "{:<width$}  {:>9} {:>10}  {:>9} {:>10}  {:>7} {:>7} {:>7} {:>7} {:>5} {:>6}",
            "Folder",
            "Src msgs",
            "Src bytes",
            "Dst msgs",
            "Dst bytes",
            "Missing",
            "Extra",
            "Changed",
            "Altered",
            "Dupl",
            "Unread"
        );
        let mut total = FolderVerdict::default();
        for (folder, label) in self.folders.iter().zip(&labels) {
            write_row(out, &shorten(label, width), folder, width);
            total.source_messages += folder.source_messages;
            total.source_bytes += folder.source_bytes;
            total.destination_messages += folder.destination_messages;
            total.destination_bytes += folder.destination_bytes;
            total.findings.absorb(folder.findings);
        }
        if self.folders.len() != 1 {
            write_row(out, "Total", &total, width);
        }
    }

    fn write_findings(&self, out: &mut String, kind: FindingKind) {
        let count = self.counts.of(kind);
        if count == 0 {
            return;
        }
        let title = match kind {
            FindingKind::Missing => "Missing at the destination",
            FindingKind::Extra => "Extra at the destination",
            FindingKind::Changed => "Changed",
            FindingKind::Duplicate => "Duplicated at the destination",
            FindingKind::Unreadable => "Unreadable",
            FindingKind::Altered => "Altered at store (same Message-ID, different content)",
            FindingKind::Arrived => {
                "Arrived at the destination, not copied by this job (information, not a difference)"
            }
            FindingKind::FlagsChangedAtDestination => {
                "Flags changed at the destination after the copy (information, not a difference)"
            }
            FindingKind::SetAside => {
                "Set aside: refused by the destination and stored in the side store (information, not a \
                 difference)"
            }
        };
        let _ = writeln!(out, "\n{title} ({count}):");
        let listed = self.findings(kind);
        for finding in listed.iter().take(SUMMARY_LISTED) {
            let _ = writeln!(out, "  {}", finding_line(finding));
        }
        let shown = listed.len().min(SUMMARY_LISTED) as u64;
        if count > shown {
            let _ = writeln!(out, "  ... and {} more", count - shown);
        }
    }
}

fn write_row(out: &mut String, label: &str, folder: &FolderVerdict, width: usize) {
    let findings = &folder.findings;
    let _ = writeln!(
        out,
        "{:<width$}  {:>9} {:>10}  {:>9} {:>10}  {:>7} {:>7} {:>7} {:>7} {:>5} {:>6}",
        label,
        folder.source_messages,
        human_bytes(folder.source_bytes),
        folder.destination_messages,
        human_bytes(folder.destination_bytes),
        findings.missing,
        findings.extra,
        findings.changed,
        findings.altered,
        findings.duplicates,
        findings.unreadable,
    );
}

fn folder_label(folder: &FolderVerdict) -> String {
    let sources = if folder.sources.is_empty() { "(none)".to_string() } else { folder.sources.join(" + ") };
    let mut label = if folder.sources.len() == 1 && sources == folder.destination {
        sources
    } else {
        format!("{sources} → {}", folder.destination)
    };
    if !folder.destination_exists && !folder.sources.is_empty() {
        label.push_str(" (absent)");
    }
    label
}

fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Bytes in binary units with one decimal.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn finding_line(finding: &Finding) -> String {
    let mut line = String::new();
    match (&finding.source_folder, &finding.source_key) {
        (Some(folder), Some(key)) => {
            let _ = write!(line, "{folder} #{key}");
        }
        _ => line.push_str("(not at source)"),
    }
    line.push_str(" → ");
    match &finding.destination_key {
        Some(key) => {
            let _ = write!(line, "{} #{key}", finding.destination_folder);
        }
        None => {
            let _ = write!(line, "{} (not there)", finding.destination_folder);
        }
    }
    let _ = write!(line, "  {}", human_bytes(finding.size));
    if let Some(id) = &finding.message_id {
        let _ = write!(line, "  <{id}>");
    }
    if let Some(date) = &finding.date {
        let _ = write!(line, "  {date}");
    }
    if let Some(subject) = &finding.subject {
        let _ = write!(line, "  \"{}\"", shorten(subject, 60));
    }
    if !finding.differences.is_empty() {
        let named: Vec<String> = finding.differences.iter().map(difference_text).collect();
        let _ = write!(line, "  [{}]", named.join("; "));
    }
    if let Some(copies) = &finding.copies {
        let _ = write!(line, "  [{} at source, {} at destination]", copies.source, copies.destination);
    }
    match (&finding.side, &finding.reason) {
        (Some(side), Some(reason)) => {
            let _ = write!(line, "  [{side}: {reason}]");
        }
        // A set-aside message: where it went is what the reader looks for.
        (None, Some(reason)) => {
            let _ = write!(line, "  [{reason}]");
        }
        _ => {}
    }
    line
}

fn difference_text(difference: &Difference) -> String {
    match difference {
        Difference::Content { source_size, destination_size, .. } => {
            format!("content differs ({source_size} → {destination_size} bytes)")
        }
        Difference::Flags { source, destination } => {
            let show = |flags: &str| if flags.is_empty() { "none".to_string() } else { flags.to_string() };
            format!("flags {} → {}", show(source), show(destination))
        }
        Difference::InternalDate { source, destination, delta_secs } => match (destination, delta_secs) {
            (Some(destination), Some(delta)) => {
                format!("internal date {source} → {destination} ({delta:+} s)")
            }
            _ => format!("internal date {source} → none"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn labels_show_mapping_and_absence() {
        let mut folder = FolderVerdict {
            sources: vec!["Old".into()],
            destination: "New".into(),
            destination_exists: true,
            ..FolderVerdict::default()
        };
        assert_eq!(folder_label(&folder), "Old → New");
        folder.destination = "Old".into();
        assert_eq!(folder_label(&folder), "Old");
        folder.destination_exists = false;
        assert_eq!(folder_label(&folder), "Old (absent)");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
