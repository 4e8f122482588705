//! The named transform for destinations that rewrite raw 8-bit header bytes.
//!
//! # Why
//! Some IMAP servers (Cyrus IMAP) accept a message whose header holds raw bytes above 0x7F but
//! replace each such byte with `X` ("naïve" is stored as "naXXve"): the text is lost. Before an
//! APPEND to such a server, mailmove encodes those bytes in the MIME ways every reader decodes, so
//! the text survives.
//!
//! # What changes
//! Only header fields holding a byte above 0x7F; every other byte (other fields, their order and
//! folding, the empty line, the body) is copied unchanged. A rewritten field keeps its name and
//! colon and the line ending of its last line; its new folds use the line ending of the message's
//! first header line. The charset is `UTF-8` when the field's value is valid UTF-8, else
//! `unknown-8bit` (RFC 1428), so the original bytes can always be recovered by decoding.
//! - Unstructured fields (Subject, Comments, X-*, any field not named below): the unfolded value
//!   becomes RFC 2047 `B` encoded words, whole; the spaces stay inside the encoded text, since the
//!   whitespace between adjacent encoded words is ignored (RFC 2047 §6.2). No word splits a UTF-8
//!   character, no word is longer than 75 characters, no line longer than 76 (but for a field
//!   name so long that no word fits after it: the value still starts on the name's line).
//! - Address fields (From, To, …): only display names (and the comment of `addr (Name)`) are
//!   encoded; addresses stay as they are. When the 8-bit byte is in an address (EAI) or where the
//!   syntax is not understood, the field is left raw: it cannot be encoded.
//! - Content-Type and Content-Disposition: 8-bit parameter values become RFC 2231 extended
//!   parameters (`name*=UTF-8''%C3%A9`, split into `name*0*=`, `name*1*=`… when long).
//! - Identifiers, trace and date fields (Message-ID, Received, …) are left raw: they almost never
//!   hold 8-bit bytes, and rewriting them is not safe.
//!
//! The transform is deterministic (verify and re-runs recompute it to know what the destination
//! holds) and idempotent: its output holds no 8-bit header byte outside fields left raw. Header
//! sections larger than 1 MiB are not transformed.

use std::io::Read;

use base64::Engine as _;

use crate::error::{Error, Result};
use crate::message::{BodyBuilder, MessageBody, SpoolConfig};

/// The transform's name, as reports and events list it.
pub const NAME: &str = "8bit-headers-encoded";

/// The largest header section transformed: the header is held in memory, so it is bounded.
const MAX_HEADER: usize = 1024 * 1024;
/// RFC 2047 §2: a line holding an encoded word is at most 76 characters long.
const LINE: usize = 76;
/// RFC 2047 §2: an encoded word is at most 75 characters long.
const WORD: usize = 75;

/// Whether the header section of `body` holds a byte above 0x7F. A header section over 1 MiB
/// counts as none, as in [`encode`].
pub fn has_8bit_header(body: &MessageBody) -> Result<bool> {
    let head = body.head(MAX_HEADER + 2)?;
    Ok(header_len(&head, body.len()).is_some_and(|end| has_8bit(&head[..end])))
}

/// `body` with every raw 8-bit header byte encoded (RFC 2047 / RFC 2231), or `None` when nothing
/// changes: the header section holds no 8-bit byte, only in fields that must stay raw, or is
/// over 1 MiB. Deterministic: the same input always gives the same output, so re-runs and verify
/// can compute what the destination holds. The body part is copied chunk by chunk, unchanged.
pub fn encode(body: &MessageBody, spool: &SpoolConfig) -> Result<Option<MessageBody>> {
    let head = body.head(MAX_HEADER + 2)?;
    let Some(end) = header_len(&head, body.len()) else { return Ok(None) };
    let Some(header) = encode_header(&head[..end]) else { return Ok(None) };
    let mut builder = spool.builder();
    builder.push(&header)?;
    copy_from(body, end, &mut builder)?;
    builder.finish().map(Some)
}

/// The length of the header section at the start of `head` (the first `MAX_HEADER + 2` bytes of
/// a message of `total` bytes): everything before the first empty line, or the whole message when
/// it has none. `None` when the section is longer than [`MAX_HEADER`].
fn header_len(head: &[u8], total: u64) -> Option<usize> {
    let mut start = 0;
    while start < head.len() {
        if start > MAX_HEADER {
            return None;
        }
        let rest = &head[start..];
        if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
            return Some(start);
        }
        match memchr::memchr(b'\n', rest) {
            Some(at) => start += at + 1,
            None => break,
        }
    }
    // No empty line: a header-only message, if `head` is all of it.
    (head.len() <= MAX_HEADER && head.len() as u64 == total).then_some(head.len())
}

/// Pushes the bytes of `body` from offset `from` on, chunk by chunk.
fn copy_from(body: &MessageBody, from: usize, builder: &mut BodyBuilder) -> Result<()> {
    if let Some(bytes) = body.as_bytes() {
        return builder.push(bytes.get(from..).unwrap_or_default());
    }
    let error = |err| Error::io("reading spooled message", err);
    let mut reader = body.reader()?;
    std::io::copy(&mut (&mut reader).take(from as u64), &mut std::io::sink()).map_err(error)?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => builder.push(&buffer[..read])?,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(error(err)),
        }
    }
}

fn has_8bit(bytes: &[u8]) -> bool {
    bytes.iter().any(|&byte| byte >= 0x80)
}

/// The header section with its 8-bit fields encoded, or `None` when no field changes.
fn encode_header(header: &[u8]) -> Option<Vec<u8>> {
    if !has_8bit(header) {
        return None;
    }
    let eol: &[u8] = match memchr::memchr(b'\n', header) {
        Some(at) if at > 0 && header[at - 1] == b'\r' => b"\r\n",
        Some(_) => b"\n",
        None => b"\r\n",
    };
    let mut out = Vec::with_capacity(header.len() * 2);
    let mut changed = false;
    for field in fields(header) {
        match has_8bit(field).then(|| encode_field(field, eol)).flatten() {
            Some(encoded) => {
                out.extend_from_slice(&encoded);
                changed = true;
            }
            None => out.extend_from_slice(field),
        }
    }
    changed.then_some(out)
}

/// The fields of a header section, each with its continuation lines and line endings.
fn fields(header: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let (mut start, mut pos) = (0, 0);
    while pos < header.len() {
        let next = memchr::memchr(b'\n', &header[pos..]).map_or(header.len(), |at| pos + at + 1);
        if next < header.len() && !is_wsp(header[next]) {
            fields.push(&header[start..next]);
            start = next;
        }
        pos = next;
    }
    if start < header.len() {
        fields.push(&header[start..]);
    }
    fields
}

/// How a field's value is encoded.
enum Kind {
    Unstructured,
    Address,
    Params,
    Raw,
}

/// Fields whose 8-bit bytes may only be encoded in display names (and comments).
const ADDRESS_FIELDS: &str = "from to cc bcc reply-to sender resent-from resent-to resent-cc resent-bcc \
    resent-sender disposition-notification-to return-receipt-to list-id";

/// Structured fields without text that may safely be encoded (identifiers, trace, dates,
/// signatures), left raw, like `List-*` (URLs) and `ARC-*`.
const RAW_FIELDS: &str = "message-id references in-reply-to received date return-path resent-date \
    resent-message-id content-id content-transfer-encoding mime-version dkim-signature \
    domainkey-signature authentication-results received-spf";

fn kind(name: &[u8]) -> Kind {
    let name = name.to_ascii_lowercase();
    let listed = |list: &str| list.split_ascii_whitespace().any(|field| field.as_bytes() == name);
    if listed(ADDRESS_FIELDS) {
        Kind::Address
    } else if listed("content-type content-disposition") {
        Kind::Params
    } else if listed(RAW_FIELDS) || name.starts_with(b"list-") || name.starts_with(b"arc-") {
        Kind::Raw
    } else {
        Kind::Unstructured
    }
}

/// One field (name, colon, value, line ending) encoded, or `None` to keep it raw.
fn encode_field(field: &[u8], eol: &[u8]) -> Option<Vec<u8>> {
    let colon = memchr::memchr(b':', field)?;
    let name = &field[..colon];
    let bare_name = trim_wsp(name);
    // A name is printable ASCII; a field starting with whitespace is a stray continuation line.
    let printable = bare_name.iter().all(|byte| (33..=126).contains(byte));
    if bare_name.is_empty() || !printable || field.first().copied().is_some_and(is_wsp) {
        return None;
    }
    let rest = &field[colon + 1..];
    let ending_len = if rest.ends_with(b"\r\n") { 2 } else { usize::from(rest.ends_with(b"\n")) };
    let (value, ending) = rest.split_at(rest.len() - ending_len);
    let value = unfold(value);
    let mut folder = Folder { out: Vec::new(), col: name.len() + 1, eol };
    match kind(bare_name) {
        Kind::Unstructured => encode_words(trim_start_wsp(&value), &mut folder, b"", b""),
        Kind::Address => encode_addresses(&value, &mut folder)?,
        Kind::Params => encode_params(&value, &mut folder)?,
        Kind::Raw => return None,
    }
    Some([name, b":", &folder.out, ending].concat())
}

/// Builds a folded field value: atoms separated by a space, or by a fold when the line is full.
struct Folder<'a> {
    out: Vec<u8>,
    col: usize,
    eol: &'a [u8],
}

impl Folder<'_> {
    /// Room left on the current line for an atom (after its separating space).
    fn room(&self) -> usize {
        LINE.saturating_sub(self.col + 1)
    }

    /// Appends an atom. The first one always stays on the name's line, so the value starts
    /// `Name: ` as before.
    fn atom(&mut self, atom: &[u8]) {
        if !self.out.is_empty() && atom.len() > self.room() {
            self.out.extend_from_slice(self.eol);
            self.col = 0;
        }
        self.out.push(b' ');
        self.out.extend_from_slice(atom);
        self.col += 1 + atom.len();
    }
}

/// Appends `text` as RFC 2047 `B` encoded words, `open` glued to the first and `close` to the
/// last (the parentheses of a comment).
fn encode_words(text: &[u8], folder: &mut Folder<'_>, open: &[u8], close: &[u8]) {
    let utf8 = std::str::from_utf8(text).is_ok();
    let charset = if utf8 { "UTF-8" } else { "unknown-8bit" };
    // `=?` charset `?B?` … `?=`, and room kept for the closing text, so a word never overflows.
    let overhead = charset.len() + 7 + close.len();
    // How many bytes of `rest` fit in `room` characters, backed off to a UTF-8 character boundary.
    let fit = |rest: &[u8], room: usize| {
        let mut take = (room.saturating_sub(overhead) / 4 * 3).min(rest.len());
        while utf8 && take > 0 && take < rest.len() && rest[take] & 0xC0 == 0x80 {
            take -= 1;
        }
        take
    };
    let (mut rest, mut first) = (text, true);
    while !rest.is_empty() {
        let prefix = if first { open } else { b"" };
        let mut take = fit(rest, folder.room().min(WORD).saturating_sub(prefix.len()));
        if take == 0 {
            // Too little room on this line: the atom goes to the next one, which has room.
            take = fit(rest, WORD - prefix.len());
        }
        if take == 0 {
            // Unreachable with these limits; kept so that the loop always ends.
            take = rest.len().min(4);
        }
        let (word, tail) = rest.split_at(take);
        let encoded = base64::engine::general_purpose::STANDARD.encode(word);
        let suffix = if tail.is_empty() { close } else { b"" };
        folder.atom(&[prefix, b"=?", charset.as_bytes(), b"?B?", encoded.as_bytes(), b"?=", suffix].concat());
        (rest, first) = (tail, false);
    }
}

/// Encodes the display names of an address list; `None` when an 8-bit byte is anywhere else.
fn encode_addresses(value: &[u8], folder: &mut Folder<'_>) -> Option<()> {
    let items: Vec<&[u8]> =
        split_top(value, b',', true).into_iter().map(trim_wsp).filter(|item| !item.is_empty()).collect();
    for (index, item) in items.iter().enumerate() {
        let sep: &[u8] = if index + 1 < items.len() { b"," } else { b"" };
        if !has_8bit(item) {
            folder.atom(&[item, sep].concat());
        } else if let Some(&open) = top_level(item, b'<', true).first() {
            // `phrase <addr>`: only the phrase may be encoded; a group (`name:`) is left raw.
            let (phrase, addr) = item.split_at(open);
            if has_8bit(addr) || !top_level(phrase, b':', true).is_empty() {
                return None;
            }
            encode_words(&unquote(trim_wsp(phrase)), folder, b"", b"");
            folder.atom(&[addr, sep].concat());
        } else {
            // `addr (Name)`: the comment may be encoded (RFC 2047 §5 (2)), the address not.
            let open = *top_level(item, b'(', true).first()?;
            let (addr, comment) = (trim_wsp(&item[..open]), &item[open + 1..]);
            let content = comment.strip_suffix(b")")?;
            if addr.is_empty() || has_8bit(addr) || content.iter().any(|b| b"()\\".contains(b)) {
                return None;
            }
            folder.atom(addr);
            encode_words(content, folder, b"(", &[b")", sep].concat());
        }
    }
    Some(())
}

/// Encodes the 8-bit parameter values of a Content-Type or Content-Disposition (RFC 2231).
fn encode_params(value: &[u8], folder: &mut Folder<'_>) -> Option<()> {
    let parts: Vec<&[u8]> = split_top(value, b';', false).into_iter().map(trim_wsp).collect();
    let (&media, params) = parts.split_first()?;
    if media.is_empty() || has_8bit(media) {
        return None;
    }
    let mut atoms = vec![media.to_vec()];
    for &param in params.iter().filter(|param| !param.is_empty()) {
        if !has_8bit(param) {
            atoms.push(param.to_vec());
            continue;
        }
        let eq = memchr::memchr(b'=', param)?;
        let name = trim_wsp(&param[..eq]);
        // An already extended (`name*`) or continued (`name*0`) parameter is not rewritten.
        if name.is_empty() || has_8bit(name) || name.contains(&b'*') {
            return None;
        }
        atoms.extend(extended_param(name, &unquote(trim_wsp(&param[eq + 1..]))));
    }
    let last = atoms.len() - 1;
    for (index, atom) in atoms.iter_mut().enumerate() {
        if index < last {
            atom.push(b';');
        }
        folder.atom(atom);
    }
    Some(())
}

/// `name*=charset''value` percent-encoded, or its RFC 2231 continuations when too long for a line;
/// a UTF-8 character is never split between two segments.
fn extended_param(name: &[u8], value: &[u8]) -> Vec<Vec<u8>> {
    let text = std::str::from_utf8(value).ok();
    let charset: &[u8] = if text.is_some() { b"UTF-8" } else { b"unknown-8bit" };
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut push_unit = |bytes: &[u8]| {
        let mut unit = Vec::new();
        for &byte in bytes {
            // RFC 2231 attribute-char: ASCII but space, controls, `*'%` and tspecials.
            if byte > 0x20 && byte < 0x7F && !b"*'%()<>@,;:\\\"/[]?=".contains(&byte) {
                unit.push(byte);
            } else {
                unit.extend_from_slice(format!("%{byte:02X}").as_bytes());
            }
        }
        units.push(unit);
    };
    match text {
        Some(text) => text.chars().for_each(|c| push_unit(c.encode_utf8(&mut [0; 4]).as_bytes())),
        None => value.iter().for_each(|byte| push_unit(std::slice::from_ref(byte))),
    }
    // A parameter's line holds a leading space and a trailing `;`.
    let limit = LINE - 2;
    let single = [name, b"*=", charset, b"''", &units.concat()].concat();
    if single.len() <= limit {
        return vec![single];
    }
    // `name*0*=charset''` starts the first segment, `name*N*=` the others.
    let head = |index: usize| {
        let quote: &[u8] = if index == 0 { b"''" } else { b"" };
        let charset = if index == 0 { charset } else { b"" };
        [name, format!("*{index}*=").as_bytes(), charset, quote].concat()
    };
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut current = Vec::new();
    for unit in units {
        if !current.is_empty() && head(segments.len()).len() + current.len() + unit.len() > limit {
            segments.push([head(segments.len()), std::mem::take(&mut current)].concat());
        }
        current.extend_from_slice(&unit);
    }
    segments.push([head(segments.len()), current].concat());
    segments
}

/// Offsets of `target` outside quoted strings, comments and (when `angles`) angle brackets.
fn top_level(value: &[u8], target: u8, angles: bool) -> Vec<usize> {
    let (mut quoted, mut escaped, mut depth, mut angle) = (false, false, 0usize, false);
    let mut hits = Vec::new();
    for (index, &byte) in value.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match byte {
            b'\\' if quoted || depth > 0 => escaped = true,
            b'"' if depth == 0 => quoted = !quoted,
            _ if quoted => {}
            _ if byte == target && depth == 0 && !angle => hits.push(index),
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            b'<' => angle = angles,
            b'>' => angle = false,
            _ => {}
        }
    }
    hits
}

/// `value` cut at each top-level `separator`.
fn split_top(value: &[u8], separator: u8, angles: bool) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for at in top_level(value, separator, angles) {
        pieces.push(&value[start..at]);
        start = at + 1;
    }
    pieces.push(&value[start..]);
    pieces
}

/// The text of a phrase or parameter value: quoted strings lose their quotes and escapes.
fn unquote(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let (mut quoted, mut escaped) = (false, false);
    for &byte in text {
        if escaped {
            out.push(byte);
            escaped = false;
        } else if quoted && byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            quoted = !quoted;
        } else {
            out.push(byte);
        }
    }
    out
}

/// `value` unfolded: each line break followed by whitespace removed, the whitespace kept.
fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for (index, &byte) in value.iter().enumerate() {
        let next = value.get(index + 1).copied();
        let folds = match byte {
            b'\n' => next.is_some_and(is_wsp),
            b'\r' => next == Some(b'\n') && value.get(index + 2).copied().is_some_and(is_wsp),
            _ => false,
        };
        if !folds {
            out.push(byte);
        }
    }
    out
}

fn is_wsp(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

fn trim_start_wsp(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&byte| !is_wsp(byte)).unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim_wsp(bytes: &[u8]) -> &[u8] {
    let bytes = trim_start_wsp(bytes);
    let end = bytes.iter().rposition(|&byte| !is_wsp(byte)).map_or(0, |at| at + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests;
