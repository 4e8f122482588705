//! Rebuilding an RFC 5322 message from an [`Item`].
//!
//! # The form
//! ```text
//! header section        the transport headers the message arrived with, without their
//!                       MIME fields; else From/To/Cc/Bcc/Subject/Date/Message-ID/
//!                       In-Reply-To/References from the item's properties
//! multipart/mixed       only when there are attachments
//!   body                text/plain, text/html, or multipart/alternative of both; HTML
//!                       de-encapsulated from the RTF body when that is where it is; a
//!                       real RTF body as text/rtf when there is no HTML
//!   attachments         one part each, in the table's order: files base64 with their name
//!                       and type, inline images with their Content-ID, embedded messages
//!                       as message/rfc822 (rebuilt the same way), links as text
//! ```
//! Inline images stay in `multipart/mixed` (clients resolve `cid:` across the message) rather
//! than in a `multipart/related`: deciding which attachments are inline needs each one read,
//! and they are read one at a time, written and dropped, so that a message never holds more
//! than one attachment in memory.
//!
//! # Determinism
//! The same item always gives the same bytes: boundaries come from the item's key (never from
//! the clock), and no header is invented (no generated Message-ID or Date: an item without one
//! gets none). Resuming, verifying and re-running depend on it: a message's fingerprint is
//! taken from these bytes.
//!
//! Leaf parts are written by `mail-builder` (RFC 2047/2231 encoding of names, the choice of
//! 7bit, quoted-printable or base64).

use std::borrow::Cow;
use std::io::{self, Write};

use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::text::Text;
use mail_builder::headers::Header;
use mail_builder::mime::{BodyPart, MimePart};

use crate::item::{AttachmentContent, AttachmentRef, Item, LoadedAttachment, Mailbox, RecipientKind};
use crate::rtf::{self, RtfBody};

/// Reads one attachment of the item being written.
pub(crate) type LoadAttachment<'a> = dyn FnMut(&AttachmentRef) -> Result<LoadedAttachment, String> + 'a;

/// Writes `item` as a message to `out`. What could not be carried (an unreadable attachment or
/// RTF body) is pushed to `damage`, one sentence each; the rest is written.
pub(crate) fn write_message(
    item: &Item,
    seed: &str,
    load: &mut LoadAttachment<'_>,
    out: &mut dyn Write,
    damage: &mut Vec<String>,
) -> io::Result<()> {
    write_headers(item, out)?;
    let body = body_part(item, seed, damage);
    if item.attachments.is_empty() {
        body.write_part(&mut *out)?;
        return Ok(());
    }
    let boundary = boundary(seed, 0);
    out.write_all(b"Content-Type: multipart/mixed;\r\n\tboundary=\"")?;
    out.write_all(boundary.as_bytes())?;
    out.write_all(b"\"\r\n\r\n")?;
    out.write_all(b"--")?;
    out.write_all(boundary.as_bytes())?;
    out.write_all(b"\r\n")?;
    body.write_part(&mut *out)?;
    for (index, attachment) in item.attachments.iter().enumerate() {
        let loaded = match load(attachment) {
            Ok(loaded) => loaded,
            Err(reason) => {
                damage.push(format!("attachment {} not readable: {reason}", describe(attachment, index)));
                continue;
            }
        };
        out.write_all(b"\r\n--")?;
        out.write_all(boundary.as_bytes())?;
        out.write_all(b"\r\n")?;
        write_attachment(loaded, &format!("{seed}/{index}"), out, damage)?;
    }
    out.write_all(b"\r\n--")?;
    out.write_all(boundary.as_bytes())?;
    out.write_all(b"--\r\n")?;
    Ok(())
}

/// How a damage note names an attachment.
fn describe(attachment: &AttachmentRef, index: usize) -> String {
    match &attachment.name {
        Some(name) => format!("{} ({name:?})", index + 1),
        None => format!("{}", index + 1),
    }
}

/// A boundary for nesting level `level` of the message keyed `seed`. `=_` cannot occur in
/// quoted-printable or base64 text, and the hash makes a clash with a 7-bit part's text a
/// practical impossibility.
fn boundary(seed: &str, level: usize) -> String {
    let hash = blake3::hash(seed.as_bytes()).to_hex();
    format!("=_mailmove_{}_{level}", &hash.as_str()[..24])
}

/// The header section, ending before the body's own `Content-Type` (the caller's part writes it).
fn write_headers(item: &Item, out: &mut dyn Write) -> io::Result<()> {
    let transported = item.transport_headers.as_deref().map(transport_fields).unwrap_or_default();
    if transported.is_empty() {
        write_property_headers(item, out)?;
    } else {
        for field in transported {
            out.write_all(field.as_bytes())?;
            out.write_all(b"\r\n")?;
        }
    }
    out.write_all(b"MIME-Version: 1.0\r\n")
}

/// The fields of a transport header section, each with its continuation lines joined by CRLF,
/// without the fields that describe the original MIME body (ours replaces it) and without
/// anything after the first empty line.
fn transport_fields(raw: &str) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    for line in raw.split('\n').map(|line| line.trim_end_matches('\r')) {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(field) = fields.last_mut() {
                field.push_str("\r\n");
                field.push_str(line);
            }
            continue;
        }
        if line.split_once(':').is_some_and(|(name, _)| !name.is_empty() && !name.contains(' ')) {
            fields.push(line.to_string());
        }
    }
    fields.retain(|field| {
        let name = field.split(':').next().unwrap_or("").to_ascii_lowercase();
        name != "mime-version" && !name.starts_with("content-")
    });
    fields
}

/// Headers from the item's properties, for items that kept no transport headers (sent items,
/// drafts, messages made in Outlook).
fn write_property_headers(item: &Item, out: &mut dyn Write) -> io::Result<()> {
    if !item.from.is_empty() {
        write_addresses(out, "From", std::slice::from_ref(&item.from))?;
    }
    for (kind, name, display) in [
        (RecipientKind::To, "To", &item.display_to),
        (RecipientKind::Cc, "Cc", &item.display_cc),
        (RecipientKind::Bcc, "Bcc", &None),
    ] {
        let mailboxes: Vec<Mailbox> = item
            .recipients
            .iter()
            .filter(|recipient| recipient.kind == kind && !recipient.mailbox.is_empty())
            .map(|recipient| recipient.mailbox.clone())
            .collect();
        if !mailboxes.is_empty() {
            write_addresses(out, name, &mailboxes)?;
        } else if let Some(display) = display.as_deref().filter(|_| item.recipients.is_empty()) {
            // No recipient table: the names are all there is.
            write_field(out, name, &Text::new(display))?;
        }
    }
    if let Some(subject) = &item.subject {
        write_field(out, "Subject", &Text::new(subject.as_str()))?;
    }
    if let Some(date) = item.date {
        write_field(out, "Date", &Date::new(date.timestamp()))?;
    }
    for (name, ids) in [
        ("Message-ID", &item.message_id),
        ("In-Reply-To", &item.in_reply_to),
        ("References", &item.references),
    ] {
        let ids: Vec<&str> = ids
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(|id| id.trim_start_matches('<').trim_end_matches('>'))
            .filter(|id| !id.is_empty())
            .collect();
        if !ids.is_empty() {
            write_field(out, name, &MessageId::from(ids))?;
        }
    }
    Ok(())
}

fn write_field(out: &mut dyn Write, name: &str, value: &impl Header) -> io::Result<()> {
    out.write_all(name.as_bytes())?;
    out.write_all(b": ")?;
    value.write_header(&mut *out, name.len() + 2)?;
    Ok(())
}

/// An address field. A recipient known only by name is written as its name (what Outlook
/// itself shows; there is no address to invent).
fn write_addresses(out: &mut dyn Write, name: &str, mailboxes: &[Mailbox]) -> io::Result<()> {
    if mailboxes.iter().all(|mailbox| mailbox.email.is_none()) {
        let names: Vec<&str> = mailboxes.iter().filter_map(|mailbox| mailbox.name.as_deref()).collect();
        return write_field(out, name, &Text::new(names.join(", ")));
    }
    let addresses: Vec<Address<'_>> = mailboxes
        .iter()
        .filter_map(|mailbox| {
            let email = mailbox.email.as_deref()?;
            let display = mailbox.name.as_deref().filter(|display| *display != email);
            Some(Address::new_address(display, email))
        })
        .collect();
    let value = match <[Address<'_>; 1]>::try_from(addresses) {
        Ok([one]) => one,
        Err(many) => Address::new_list(many),
    };
    write_field(out, name, &value)
}

/// The body: plain text, HTML (from `PidTagHtml`, else de-encapsulated from the RTF body), or
/// both as alternatives; real RTF as `text/rtf` when there is no HTML.
fn body_part(item: &Item, seed: &str, damage: &mut Vec<String>) -> MimePart<'static> {
    let mut text = item.body_text.clone();
    let mut html = item.body_html.clone();
    let mut rtf_part = None;
    if html.is_none() {
        if let Some(compressed) = &item.body_rtf {
            match rtf::read_rtf_body(compressed) {
                Ok(RtfBody::Html(decapsulated)) => html = Some(decapsulated),
                Ok(RtfBody::Text(decapsulated)) => text = text.or(Some(decapsulated)),
                Ok(RtfBody::Rtf(rtf)) => rtf_part = Some(rtf),
                Err(reason) => damage.push(format!("RTF body not readable: {reason}")),
            }
        }
    }
    let mut parts: Vec<MimePart<'static>> = Vec::new();
    if let Some(text) = text {
        parts.push(MimePart::new("text/plain", BodyPart::Text(Cow::Owned(text))));
    }
    if let Some(html) = html {
        parts.push(MimePart::new("text/html", BodyPart::Text(Cow::Owned(html))));
    } else if let Some(rtf) = rtf_part {
        parts.push(MimePart::new("text/rtf", BodyPart::Text(Cow::Owned(rtf))));
    }
    match parts.len() {
        0 => MimePart::new("text/plain", BodyPart::Text(Cow::Borrowed(""))),
        1 => parts.remove(0),
        _ => MimePart::new(
            ContentType::new("multipart/alternative").attribute("boundary", boundary(seed, 1)),
            BodyPart::Multipart(parts),
        ),
    }
}

/// One attachment part.
fn write_attachment(
    attachment: LoadedAttachment,
    seed: &str,
    out: &mut dyn Write,
    damage: &mut Vec<String>,
) -> io::Result<()> {
    let LoadedAttachment { name, mime_type, content_id, inline, content } = attachment;
    let disposition = |kind: &'static str| {
        let disposition = ContentType::new(kind);
        match &name {
            Some(name) => disposition.attribute("filename", name.clone()),
            None => disposition,
        }
    };
    let disposition = disposition(if inline { "inline" } else { "attachment" });
    match content {
        AttachmentContent::Bytes(bytes) => {
            // A message/* part may not be base64 (RFC 2046 5.2.1), and these bytes are written
            // as base64: such a file (an attached .eml) travels as an opaque file.
            let content_type = mime_type
                .filter(|kind| kind.contains('/') && !kind.contains(char::is_whitespace))
                .filter(|kind| !kind.to_ascii_lowercase().starts_with("message/"))
                .unwrap_or_else(|| guess_type(name.as_deref()).to_string());
            let content_type = match &name {
                Some(name) => ContentType::new(content_type).attribute("name", name.clone()),
                None => ContentType::new(content_type),
            };
            let mut part = MimePart::new(content_type, BodyPart::Binary(Cow::Owned(bytes)))
                .header("Content-Disposition", disposition);
            if let Some(id) = content_id {
                part = part.cid(id.trim_start_matches('<').trim_end_matches('>').to_string());
            }
            part.write_part(&mut *out)?;
        }
        AttachmentContent::Reference(target) => {
            let text =
                format!("Attachment {} was a link, not a file: {target}\r\n", name.as_deref().unwrap_or(""));
            MimePart::new("text/plain", BodyPart::Text(Cow::Owned(text)))
                .header("Content-Disposition", disposition)
                .write_part(&mut *out)?;
        }
        AttachmentContent::Message(embedded) => {
            // message/rfc822 is never base64 (RFC 2046 5.2.1): the rebuilt message follows as it
            // is, itself 7-bit unless its transport headers carried raw 8-bit text.
            out.write_all(b"Content-Type: message/rfc822\r\n")?;
            write_field(out, "Content-Disposition", &disposition)?;
            out.write_all(b"\r\n")?;
            let mut inner_damage = Vec::new();
            let mut unreadable = |attachment: &AttachmentRef| -> Result<LoadedAttachment, String> {
                let _ = attachment;
                Err("outlook-pst 1.2 cannot open the attachments of an embedded message".to_string())
            };
            write_message(&embedded, seed, &mut unreadable, out, &mut inner_damage)?;
            let label = name.as_deref().unwrap_or("embedded message");
            damage.extend(inner_damage.into_iter().map(|note| format!("in {label:?}: {note}")));
        }
    }
    Ok(())
}

/// A content type from a file name's extension, for attachments without `PidTagAttachMimeTag`.
fn guess_type(name: Option<&str>) -> &'static str {
    let extension = name.and_then(|name| name.rsplit_once('.')).map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("jpg" | "jpeg" | "jpe") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("bmp") => "image/bmp",
        Some("tif" | "tiff") => "image/tiff",
        Some("pdf") => "application/pdf",
        Some("txt" | "log") => "text/plain",
        Some("htm" | "html") => "text/html",
        Some("csv") => "text/csv",
        Some("ics") => "text/calendar",
        Some("vcf") => "text/vcard",
        Some("rtf") => "application/rtf",
        Some("zip") => "application/zip",
        Some("doc") => "application/msword",
        Some("xls") => "application/vnd.ms-excel",
        Some("ppt") => "application/vnd.ms-powerpoint",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("pptx") => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
#[path = "mime_tests.rs"]
mod tests;
