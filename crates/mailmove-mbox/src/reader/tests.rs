use super::*;
use crate::writer::{write_message, CountingWriter};
use mailmove_core::{Message, MessageMeta};
use proptest::prelude::*;
use std::io::Cursor;

fn read_all(file: &[u8]) -> Vec<Parsed> {
    let mut reader = MboxReader::new(Cursor::new(file.to_vec()), "test".into());
    let mut out = Vec::new();
    while let Some(parsed) = reader.next_message(&Want::Body(SpoolConfig::default()), false).unwrap() {
        out.push(parsed);
    }
    out
}

#[test]
fn keys_parse() {
    assert_eq!(parse_key("12-0123456789ab"), Some((12, "0123456789ab")));
    for bad in ["12", "x-0123456789ab", "12-0123", "12-0123456789az", "999999999"] {
        assert_eq!(parse_key(bad), None, "{bad}");
    }
}

fn bodies(parsed: &[Parsed]) -> Vec<Vec<u8>> {
    parsed.iter().map(|p| p.body.as_ref().unwrap().to_bytes().unwrap().to_vec()).collect()
}

#[test]
fn separator_blank_line_rules() {
    let file = b"From a Sat Jan  3 01:05:34 1996\r\n\r\nFrom b Sat Jan  3 01:05:34 1996\nx\n\r\nFrom c Sat Jan  3 01:05:34 1996\nno blank\nFrom d Sat Jan  3 01:05:34 1996\nlast\n";
    let parsed = read_all(file);
    // A CRLF blank line right after the From line; after an LF line only the LF goes (and the
    // CRLF line still counts as the blank line before a separator); a From line right after a
    // text line is text; at the end of the file a last line without a blank line loses its LF.
    assert_eq!(
        bodies(&parsed),
        [b"".to_vec(), b"x\n\r".to_vec(), b"no blank\nFrom d Sat Jan  3 01:05:34 1996\nlast".to_vec()]
    );
    let line = file.windows(6).position(|w| w == b"From d").unwrap();
    let damage = parsed[2].damage().unwrap();
    assert!(damage.contains(&format!("byte offset {line}")), "{damage}");
    // The empty message is not damage; "x" after a separator has no header, which is.
    assert_eq!(parsed[0].damage(), None);
    assert!(parsed[1].damage().unwrap().contains("no header"));
}

#[test]
fn separators_across_buffer_boundaries() {
    // The 64 KiB buffer ends inside the From lines: recognition looks ahead past it.
    for shift in [0usize, 3, 20, 40] {
        let filler = "y".repeat(64 * 1024 - 60 - shift);
        let file = format!(
            "From a Sat Jan  3 01:05:34 1996\nSubject: 1\n\n{filler}\nFrom x Sat Jan  3 01:05:34 1996\n\nFrom b Sat Jan  3 01:05:35 1996\nSubject: 2\n\nz\n\n"
        );
        let parsed = read_all(file.as_bytes());
        assert_eq!(
            bodies(&parsed),
            [
                format!("Subject: 1\n\n{filler}\nFrom x Sat Jan  3 01:05:34 1996\n").into_bytes(),
                b"Subject: 2\n\nz\n".to_vec()
            ],
            "shift {shift}"
        );
        assert_eq!(parsed[1].offset, file.find("From b").unwrap() as u64);
    }
}

#[test]
fn no_final_newline_mark_only_where_the_writer_puts_it() {
    // Written by the writer: the mark and its newline go.
    let file = b"From a Sat Jan  3 01:05:34 1996\nX-Mailmove-No-Final-Newline: yes\nSubject: m\n\nend\n\n";
    assert_eq!(bodies(&read_all(file)), [b"Subject: m\n\nend".to_vec()]);
    // Elsewhere (no blank line at the end, a CRLF blank line): only the mark line goes.
    let file = b"From a Sat Jan  3 01:05:34 1996\nX-Mailmove-No-Final-Newline: yes\nSubject: m\n\nend\n";
    assert_eq!(bodies(&read_all(file)), [b"Subject: m\n\nend".to_vec()]);
    let file = b"From a Sat Jan  3 01:05:34 1996\r\nX-Mailmove-No-Final-Newline: yes\r\nSubject: m\r\n\r\nend\r\n\r\n";
    assert_eq!(bodies(&read_all(file)), [b"Subject: m\r\n\r\nend\r\n".to_vec()]);
}

#[test]
fn seeking_checks_the_blank_line_before_a_separator() {
    let file =
        b"From a Sat Jan  3 01:05:34 1996\nSubject: a\n\ntext\nFrom b Sat Jan  3 01:05:34 1996\nmore\n\n";
    let mut reader = MboxReader::new(Cursor::new(file.to_vec()), "test".into());
    let inside = file.iter().position(|b| *b == b'b').unwrap() as u64 - 5;
    reader.seek(inside).unwrap();
    let parsed = reader.next_message(&Want::Meta, false).unwrap().unwrap();
    // Not a separator there: what a seek to it finds is not a message with a From line.
    assert!(parsed.from.is_none());
}

/// Everything the reader says of each message of `file`, bodies included, as text.
fn read_with(file: &[u8], want: &Want, body_runs: bool) -> Vec<String> {
    let mut reader = MboxReader::new(Cursor::new(file.to_vec()), "test".into());
    reader.body_runs = body_runs;
    let mut out = Vec::new();
    while let Some(mut parsed) = reader.next_message(want, false).unwrap() {
        let body = parsed.body.take().map(|body| body.to_bytes().unwrap().to_vec());
        out.push(format!("{parsed:?} {body:?}"));
    }
    out
}

proptest! {
    #[test]
    fn body_runs_read_what_lines_read(messages in proptest::collection::vec(proptest::collection::vec(prop_oneof![
            Just("From a@b Sat Jan  3 01:05:34 1996\n".to_string()), Just("From x\n".to_string()),
            Just(">From y\r\n".to_string()), Just(">>From ".to_string()), Just("\n".to_string()),
            Just("\r\n".to_string()), Just("\r".to_string()), Just("Subject: s\n".to_string()),
            Just("Status: RO\n".to_string()), Just("Content-Length: 7\n".to_string()),
            Just("X-Mailmove-No-Final-Newline: yes\n".to_string()), Just("text".to_string()),
            Just(">".to_string()), Just("F".to_string()), Just(" From ".to_string()),
            // Long lines move the buffer's end (64 KiB) across every other shape.
            (1usize..40_000).prop_map(|n| "y".repeat(n)),
        ], 0..12), 1..6)) {
        // Each message after a separator, its header often ended, so that body lines and
        // their endings meet the next separator in every combination.
        let file: String = messages
            .iter()
            .enumerate()
            .map(|(index, parts)| {
                let header = if index % 2 == 0 { "Subject: m\n\n" } else { "" };
                format!("From a@b Sat Jan  3 01:05:34 1996\n{header}{}", parts.concat())
            })
            .collect();
        let file = file.into_bytes();
        for want in [Want::Meta, Want::Body(SpoolConfig::default()), Want::Fingerprint] {
            prop_assert_eq!(read_with(&file, &want, true), read_with(&file, &want, false));
        }
    }

    #[test]
    fn written_messages_read_back(bodies in proptest::collection::vec(
        proptest::collection::vec(prop_oneof![
            Just(&b"From x\n"[..]), Just(&b">From y\r\n"[..]), Just(&b">>From "[..]), Just(&b"\n"[..]),
            Just(&b"\r\n"[..]), Just(&b"Subject: s\n"[..]), Just(&b"text"[..]), Just(&b">"[..]),
            Just(&b"From a@b Sat Jan  3 01:05:34 1996\n"[..]), Just(&b"\r"[..]),
        ], 0..10).prop_map(|parts| parts.concat()), 1..4)) {
        let mut file = Vec::new();
        let mut from_files = Vec::new();
        let mut keys = Vec::new();
        for body in &bodies {
            let offset = file.len() as u64;
            let message = Message::new(MessageMeta::new("k", 0), MessageBody::from_bytes(body.clone()));
            let written = write_message(&mut CountingWriter::new(&mut file), &message).unwrap();
            // None of these shapes needs the closest form (see the writer).
            prop_assert!(written.alterations.is_empty(), "{:?}", written.alterations);
            keys.push(format!("{offset}-{}", written.key_hash));
            // A body read where it lies (a Maildir file) is written alike: its two ends are read
            // apart from the rest.
            let mut lying = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut lying, body).unwrap();
            let in_file = Message::new(MessageMeta::new("k", 0), MessageBody::from_file(lying).unwrap());
            write_message(&mut CountingWriter::new(&mut from_files), &in_file).unwrap();
        }
        prop_assert_eq!(&from_files, &file);
        let parsed = read_all(&file);
        prop_assert_eq!(parsed.len(), bodies.len());
        for (parsed, (body, key)) in parsed.iter().zip(bodies.iter().zip(&keys)) {
            prop_assert_eq!(&parsed.body.as_ref().unwrap().to_bytes().unwrap()[..], &body[..]);
            prop_assert_eq!(&parsed.key, key);
            // The writer leaves nothing to guess: a header-less message is the only oddity.
            for (kind, _) in &parsed.warnings {
                prop_assert!(matches!(kind, WarningKind::NoHeader | WarningKind::SplitByFromLine), "{:?}", kind);
            }
        }
    }
}
