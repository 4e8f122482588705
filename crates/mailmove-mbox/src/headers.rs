//! A streaming filter over the header block of one message, shared by the reader and the writer.
//!
//! The *header block* is every line from the start of the message up to the first blank line
//! (`\n` or `\r\n` alone), or the whole message when there is no blank line. In it the filter
//! removes the lines the mbox owns — the flag lines (`Status:`, `X-Status:`, `X-Keywords:`) and
//! the writer's [`NO_FINAL_NEWLINE`] mark, each with its folded continuation lines — captures the values of the headers the backend reads, and — for the
//! writer — inserts the new flag lines just before the blank line. Everything after the header
//! block passes through untouched. Memory is bounded: a line is looked at through its first 32
//! bytes and captured values are capped at [`CAPTURE_LIMIT`].

use mailmove_core::Result;

use crate::flag_headers::FlagHeaders;

/// Largest value kept per captured header.
pub(crate) const CAPTURE_LIMIT: usize = 4096;

/// The field the writer adds to a message that has no final newline (see
/// [`writer`](crate::writer)): the writer ends such a message with a newline of its own so that
/// the next separator follows a blank line, and the reader removes that newline again.
pub(crate) const NO_FINAL_NEWLINE: &str = "X-Mailmove-No-Final-Newline";

/// Bytes of a line start looked at to classify it.
const DECIDE_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    None,
    Status,
    XStatus,
    XKeywords,
    MozillaStatus,
    MozillaKeys,
    GmailLabels,
    MessageId,
    ContentLength,
    XImap,
    NoFinalNewline,
    Subject,
    ReturnPath,
}

impl Target {
    /// The field's name as the mbox writes it (for the fields the filter strips).
    fn name(self) -> &'static str {
        match self {
            Target::Status => "Status",
            Target::XStatus => "X-Status",
            Target::XKeywords => "X-Keywords",
            Target::NoFinalNewline => NO_FINAL_NEWLINE,
            _ => "",
        }
    }
}

/// Values of the headers the backend reads (first occurrence, except the flag lines which
/// accumulate).
#[derive(Debug, Default, Clone)]
pub(crate) struct Captured {
    pub flags: FlagHeaders,
    pub gmail_labels: Option<Vec<u8>>,
    pub message_id: Option<Vec<u8>>,
    pub content_length: Option<Vec<u8>>,
    pub x_imap: bool,
    /// The writer's [`NO_FINAL_NEWLINE`] mark was present.
    pub no_final_newline: bool,
    pub subject: Option<Vec<u8>>,
    pub return_path: Option<Vec<u8>>,
}

impl Captured {
    fn slot(&mut self, target: Target) -> Option<&mut Option<Vec<u8>>> {
        match target {
            Target::None | Target::XImap | Target::NoFinalNewline => None,
            Target::Status => Some(&mut self.flags.status),
            Target::XStatus => Some(&mut self.flags.x_status),
            Target::XKeywords => Some(&mut self.flags.x_keywords),
            Target::MozillaStatus => Some(&mut self.flags.mozilla_status),
            Target::MozillaKeys => Some(&mut self.flags.mozilla_keys),
            Target::GmailLabels => Some(&mut self.gmail_labels),
            Target::MessageId => Some(&mut self.message_id),
            Target::ContentLength => Some(&mut self.content_length),
            Target::Subject => Some(&mut self.subject),
            Target::ReturnPath => Some(&mut self.return_path),
        }
    }

    fn append(&mut self, target: Target, bytes: &[u8]) {
        if let Some(Some(value)) = self.slot(target) {
            let room = CAPTURE_LIMIT.saturating_sub(value.len());
            value.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }
}

/// Where filtered bytes go: `(bytes, in_body)`.
pub(crate) type Out<'a> = dyn FnMut(&[u8], bool) -> Result<()> + 'a;

/// The filter (see the module documentation).
#[derive(Debug)]
pub(crate) struct HeaderFilter {
    in_header: bool,
    at_line_start: bool,
    head: Vec<u8>,
    line_strip: bool,
    line_target: Target,
    field_strip: bool,
    field_target: Target,
    captured: Captured,
    stripped_fields: u64,
    stripped_names: Vec<&'static str>,
    first_kept_is_field: Option<bool>,
    insertion: Option<Vec<u8>>,
}

impl HeaderFilter {
    /// A filter for the reader (no insertion).
    pub(crate) fn new() -> Self {
        HeaderFilter {
            in_header: true,
            at_line_start: true,
            head: Vec::with_capacity(DECIDE_LEN),
            line_strip: false,
            line_target: Target::None,
            field_strip: false,
            field_target: Target::None,
            captured: Captured::default(),
            stripped_fields: 0,
            stripped_names: Vec::new(),
            first_kept_is_field: None,
            insertion: None,
        }
    }

    /// A filter for the writer: `insertion` goes just before the blank line ending the header.
    pub(crate) fn with_insertion(insertion: Vec<u8>) -> Self {
        HeaderFilter { insertion: Some(insertion), ..HeaderFilter::new() }
    }

    /// Whether the blank line ending the header block has not been seen yet.
    pub(crate) fn in_header(&self) -> bool {
        self.in_header
    }

    /// The captured header values.
    pub(crate) fn captured(&self) -> &Captured {
        &self.captured
    }

    /// How many flag header fields (and [`NO_FINAL_NEWLINE`] marks) were removed.
    pub(crate) fn stripped_fields(&self) -> u64 {
        self.stripped_fields
    }

    /// The names of the fields [`stripped_fields`](Self::stripped_fields) counts, each once, in
    /// the order first met (spelled as the mbox writes them).
    pub(crate) fn stripped_names(&self) -> &[&'static str] {
        &self.stripped_names
    }

    /// Whether the first line kept is not a header field (a header-less or empty message).
    pub(crate) fn header_less(&self) -> bool {
        self.first_kept_is_field != Some(true)
    }

    /// Feeds bytes of the message.
    pub(crate) fn push(&mut self, mut data: &[u8], out: &mut Out<'_>) -> Result<()> {
        while !data.is_empty() {
            if !self.in_header {
                return out(data, true);
            }
            if self.at_line_start {
                let byte = data[0];
                data = &data[1..];
                self.head.push(byte);
                if self.decidable() {
                    self.decide(out)?;
                }
                continue;
            }
            match memchr::memchr(b'\n', data) {
                Some(index) => {
                    self.line_bytes(&data[..=index], out)?;
                    data = &data[index + 1..];
                    self.at_line_start = true;
                }
                None => {
                    self.line_bytes(data, out)?;
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// Ends the message (flushes an undecided last line).
    pub(crate) fn finish(&mut self, out: &mut Out<'_>) -> Result<()> {
        if self.in_header && self.at_line_start && !self.head.is_empty() {
            self.decide(out)?;
        }
        if self.first_kept_is_field.is_none() && !self.in_header {
            self.first_kept_is_field = Some(false);
        }
        Ok(())
    }

    fn decidable(&self) -> bool {
        let head = &self.head;
        head.last() == Some(&b'\n')
            || matches!(head[0], b' ' | b'\t')
            || head.contains(&b':')
            || head.len() >= DECIDE_LEN
    }

    fn decide(&mut self, out: &mut Out<'_>) -> Result<()> {
        let head = std::mem::take(&mut self.head);
        if head == b"\n" || head == b"\r\n" {
            if let Some(insertion) = self.insertion.take() {
                out(&insertion, false)?;
            }
            out(&head, false)?;
            self.in_header = false;
            if self.first_kept_is_field.is_none() {
                self.first_kept_is_field = Some(false);
            }
            self.head = head;
            self.head.clear();
            return Ok(());
        }
        let mut captured_from = 0;
        if matches!(head[0], b' ' | b'\t') {
            self.line_strip = self.field_strip;
            self.line_target = self.field_target;
            if self.first_kept_is_field.is_none() && !self.line_strip {
                self.first_kept_is_field = Some(false);
            }
        } else {
            let colon = head.iter().position(|b| *b == b':');
            let name = colon.map(|end| &head[..end]).filter(|name| valid_name(name));
            let (strip, target) = match name {
                Some(name) => classify(name),
                None => (false, Target::None),
            };
            if strip {
                self.stripped_fields += 1;
                // Named before `claim`, which gives the mark's lines no target.
                if !self.stripped_names.contains(&target.name()) {
                    self.stripped_names.push(target.name());
                }
            } else if self.first_kept_is_field.is_none() {
                self.first_kept_is_field = Some(name.is_some());
            }
            let target = self.claim(target);
            self.line_strip = strip;
            self.line_target = target;
            self.field_strip = strip;
            self.field_target = target;
            captured_from = colon.map(|c| c + 1).unwrap_or(head.len());
        }
        self.captured.append(self.line_target, &head[captured_from..]);
        if !self.line_strip {
            out(&head, false)?;
        }
        self.at_line_start = head.last() == Some(&b'\n');
        self.head = head;
        self.head.clear();
        Ok(())
    }

    /// Starts capturing a header: the flag lines accumulate, the others keep their first value.
    fn claim(&mut self, target: Target) -> Target {
        if target == Target::XImap {
            self.captured.x_imap = true;
            return Target::None;
        }
        if target == Target::NoFinalNewline {
            self.captured.no_final_newline = true;
            return Target::None;
        }
        let accumulate = matches!(target, Target::Status | Target::XStatus | Target::XKeywords);
        match self.captured.slot(target) {
            None => Target::None,
            Some(slot @ None) => {
                *slot = Some(Vec::new());
                target
            }
            Some(Some(value)) if accumulate => {
                value.push(b' ');
                target
            }
            Some(Some(_)) => Target::None,
        }
    }

    fn line_bytes(&mut self, bytes: &[u8], out: &mut Out<'_>) -> Result<()> {
        self.captured.append(self.line_target, bytes);
        if self.line_strip {
            Ok(())
        } else {
            out(bytes, false)
        }
    }
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|b| (33..=126).contains(b))
}

fn classify(name: &[u8]) -> (bool, Target) {
    let lower = name.to_ascii_lowercase();
    match lower.as_slice() {
        b"status" => (true, Target::Status),
        b"x-status" => (true, Target::XStatus),
        b"x-keywords" => (true, Target::XKeywords),
        b"x-mailmove-no-final-newline" => (true, Target::NoFinalNewline),
        b"x-mozilla-status" => (false, Target::MozillaStatus),
        b"x-mozilla-keys" => (false, Target::MozillaKeys),
        b"x-gmail-labels" => (false, Target::GmailLabels),
        b"message-id" => (false, Target::MessageId),
        b"content-length" => (false, Target::ContentLength),
        b"x-imap" => (false, Target::XImap),
        b"subject" => (false, Target::Subject),
        b"return-path" => (false, Target::ReturnPath),
        _ => (false, Target::None),
    }
}

/// Where the header block of `head` ends: the offset of its blank line, when `head` contains one.
pub(crate) fn blank_line_offset(head: &[u8]) -> Option<usize> {
    let mut start = 0;
    while start < head.len() {
        let rest = &head[start..];
        if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
            return Some(start);
        }
        start += rest.iter().position(|b| *b == b'\n')? + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(filter: &mut HeaderFilter, input: &[u8], chunk: usize) -> Vec<u8> {
        let mut output = Vec::new();
        let mut sink = |bytes: &[u8], _body: bool| -> Result<()> {
            output.extend_from_slice(bytes);
            Ok(())
        };
        for piece in input.chunks(chunk.max(1)) {
            filter.push(piece, &mut sink).unwrap();
        }
        filter.finish(&mut sink).unwrap();
        output
    }

    #[test]
    fn strips_flag_lines_and_captures() {
        let input = b"Subject: hi\r\nStatus: RO\r\nX-Keywords: a\r\n  b\r\nMessage-ID: <1@x>\r\nX-Status: F\r\n\r\nStatus: body\r\n";
        for chunk in [1, 2, 5, 1000] {
            let mut filter = HeaderFilter::new();
            let out = run(&mut filter, input, chunk);
            assert_eq!(out, b"Subject: hi\r\nMessage-ID: <1@x>\r\n\r\nStatus: body\r\n", "chunk {chunk}");
            let (flags, _) = filter.captured().flags.flags();
            assert!(flags.seen && flags.flagged && flags.keywords.len() == 2);
            assert_eq!(filter.captured().message_id.as_deref(), Some(&b" <1@x>\r\n"[..]));
            assert!(!filter.header_less());
            assert_eq!(filter.stripped_fields(), 3);
            assert_eq!(filter.stripped_names(), ["Status", "X-Keywords", "X-Status"]);
        }
    }

    #[test]
    fn strips_and_notes_the_no_final_newline_mark() {
        let mut filter = HeaderFilter::new();
        let out = run(
            &mut filter,
            b"Subject: a\nx-mailmove-no-final-newline: yes\n\nX-Mailmove-No-Final-Newline: body\n",
            4,
        );
        assert_eq!(out, b"Subject: a\n\nX-Mailmove-No-Final-Newline: body\n");
        assert!(filter.captured().no_final_newline);
        let mut filter = HeaderFilter::new();
        run(&mut filter, b"Subject: a\n\nX-Mailmove-No-Final-Newline: yes\n", 4);
        assert!(!filter.captured().no_final_newline, "only in the header");
    }

    #[test]
    fn inserts_before_blank_line() {
        let mut filter = HeaderFilter::with_insertion(b"Status: O\n".to_vec());
        assert_eq!(run(&mut filter, b"A: b\n\nbody\n", 3), b"A: b\nStatus: O\n\nbody\n");
    }

    #[test]
    fn header_less() {
        let mut filter = HeaderFilter::new();
        run(&mut filter, b"just text\n\nmore", 4);
        assert!(filter.header_less());
        let mut filter = HeaderFilter::new();
        run(&mut filter, b"", 4);
        assert!(filter.header_less());
        assert_eq!(blank_line_offset(b"a: b\r\n\r\nc"), Some(6));
        assert_eq!(blank_line_offset(b"\nc"), Some(0));
        assert_eq!(blank_line_offset(b"a: b\nc: d"), None);
    }

    proptest! {
        #[test]
        fn insertion_is_removed_again(lines in proptest::collection::vec("[A-Za-z: \\t>]{0,12}", 0..6), crlf: bool, body in "[a-z\n]{0,20}") {
            let eol = if crlf { "\r\n" } else { "\n" };
            let header: String = lines.iter().filter(|l| !l.is_empty()).map(|l| format!("Y-{l}{eol}")).collect();
            let message = format!("{header}{eol}{body}");
            let mut writer = HeaderFilter::with_insertion(format!("Status: O{eol}X-Keywords: k{eol}").into_bytes());
            let written = run(&mut writer, message.as_bytes(), 3);
            let mut reader = HeaderFilter::new();
            prop_assert_eq!(run(&mut reader, &written, 7), message.as_bytes());
        }
    }
}
