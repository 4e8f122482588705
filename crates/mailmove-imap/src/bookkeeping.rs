//! The mbox bookkeeping headers some servers show to clients, and taking them away again.
//!
//! A server that keeps its folders as mbox files writes its own state into the messages:
//! `X-IMAPbase` (UIDVALIDITY and the next UID, on the first message), `X-UID`, `Status`,
//! `X-Status`, `X-Keywords`. Dovecot's mbox driver hides them; GNU Mailutils imap4d shows them
//! in `BODY[]`, and rewrites them whenever the folder changes (the first message's `X-IMAPbase`
//! changes with every message appended). A fingerprint over them would change under our feet: a
//! copy checked exact, or listed for reconciliation, would later look like another message and be
//! appended again. So once a store has seen a message whose `X-UID` field is its own UID at the
//! server (the server's bookkeeping, not a header some mail happened to carry), it reads every
//! message without these fields: the message as it was stored, as Dovecot's mbox driver shows
//! it. (Other IMAP clients of such a server see the fields; they are the server's, not the
//! message's, and not named per message.)

use mailmove_core::stored::{header_section, MAX_HEADER_SECTION};
use mailmove_core::{MessageBody, Result, SpoolConfig};

/// The fields such servers write into messages (compared without regard to case).
pub(crate) const FIELDS: [&str; 6] = ["X-IMAPbase", "X-IMAP", "X-UID", "Status", "X-Status", "X-Keywords"];

/// The name of a header line, when it starts a field.
fn field_name(line: &[u8]) -> Option<&[u8]> {
    if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return None;
    }
    let colon = line.iter().position(|&b| b == b':')?;
    Some(line[..colon].trim_ascii())
}

fn is_one_of(name: &[u8], names: &[&str]) -> bool {
    names.iter().any(|candidate| name.eq_ignore_ascii_case(candidate.as_bytes()))
}

/// Whether the header section of the message with this UID shows the server's bookkeeping: an
/// `X-UID` field whose value is the message's own UID.
pub(crate) fn shows_bookkeeping(header: &[u8], uid: u32) -> bool {
    let uid = uid.to_string();
    header.split(|&b| b == b'\n').any(|line| {
        field_name(line).is_some_and(|name| name.eq_ignore_ascii_case(b"X-UID"))
            && line
                .iter()
                .position(|&b| b == b':')
                .is_some_and(|colon| line[colon + 1..].trim_ascii() == uid.as_bytes())
    })
}

/// `body` without its bookkeeping fields, or `None` when it has none (or a header section too
/// large to look at). The rest of the message is copied through unchanged, chunk by chunk.
pub(crate) fn strip(body: &MessageBody, spool: &SpoolConfig) -> Result<Option<MessageBody>> {
    let Some(header) = header_section(body)? else { return Ok(None) };
    let mut kept = Vec::with_capacity(header.len());
    let mut dropping = false;
    let mut removed = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        match field_name(line) {
            Some(name) => dropping = is_one_of(name, &FIELDS),
            // A continuation line belongs to the field before it; the empty line ends the section.
            None if line.trim_ascii().is_empty() => dropping = false,
            None => {}
        }
        if dropping {
            removed = true;
        } else {
            kept.extend_from_slice(line);
        }
    }
    if !removed {
        return Ok(None);
    }
    debug_assert!(header.len() <= MAX_HEADER_SECTION);
    let mut builder = spool.builder();
    builder.push(&kept)?;
    let mut offset = 0usize;
    let mut failed = None;
    body.for_each_chunk(|chunk| {
        let start = header.len().saturating_sub(offset).min(chunk.len());
        offset += chunk.len();
        if failed.is_none() && start < chunk.len() {
            if let Err(error) = builder.push(&chunk[start..]) {
                failed = Some(error);
            }
        }
    })?;
    if let Some(error) = failed {
        return Err(error);
    }
    builder.finish().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_fields_are_taken_away_and_nothing_else() {
        let stored = b"Message-ID: <m0@x>\r\nSubject: s0\r\nX-IMAPbase: 1795778367\r\n  6\r\nX-UID: 1\r\nStatus: RO\r\n\r\nStatus: body line\r\n";
        assert!(shows_bookkeeping(stored, 1));
        assert!(!shows_bookkeeping(stored, 2), "an X-UID of another message is some mail's header");
        let body = MessageBody::from_bytes(&stored[..]);
        let stripped = strip(&body, &SpoolConfig::default()).unwrap().unwrap();
        assert_eq!(
            stripped.to_bytes().unwrap().as_ref(),
            b"Message-ID: <m0@x>\r\nSubject: s0\r\n\r\nStatus: body line\r\n"
        );
        let plain = MessageBody::from_bytes(&b"Subject: x\r\n\r\nX-UID: 3\r\n"[..]);
        assert!(strip(&plain, &SpoolConfig::default()).unwrap().is_none());
        assert!(!shows_bookkeeping(b"Subject: x\r\nStatus: RO\r\n\r\n", 1), "Status alone is no telltale");

        // A spooled body gives the same result.
        let spool = SpoolConfig { threshold: 8, dir: None };
        let mut builder = spool.builder();
        builder.push(stored).unwrap();
        let spooled = strip(&builder.finish().unwrap(), &spool).unwrap().unwrap();
        assert_eq!(spooled.to_bytes().unwrap(), stripped.to_bytes().unwrap());
    }
}
