//! Folder paths ↔ mailbox names: personal namespace prefix, hierarchy delimiter, modified UTF-7 or
//! UTF-8 (after ENABLE UTF8=ACCEPT).

use mailmove_core::{Error, FolderPath, Result};

use crate::capability::Capability;
use crate::conn::{Conn, Untagged};
use crate::utf7;
use crate::wire::{Status, Value};

/// How this server names folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Naming {
    /// Personal namespace prefix, delimiter included (`""`, `"INBOX."`).
    pub prefix: String,
    /// Hierarchy delimiter; `None` for a flat server.
    pub delimiter: Option<char>,
    /// Prefixes of the other users' and shared namespaces (their folders are not ours to copy).
    pub foreign: Vec<String>,
    /// Whether names travel as UTF-8 (UTF8=ACCEPT enabled) rather than modified UTF-7.
    pub utf8: bool,
}

impl Naming {
    /// The mailbox name of `path`.
    pub fn encode(&self, path: &FolderPath) -> Result<String> {
        let invalid =
            |reason: &str| Error::InvalidFolderName { name: path.to_string(), reason: reason.to_string() };
        if path.is_root() {
            return Err(invalid("empty folder name"));
        }
        if path.is_inbox() {
            return Ok("INBOX".to_string());
        }
        let segments = path.segments();
        if segments.len() > 1 && self.delimiter.is_none() {
            return Err(invalid("the server has no folder hierarchy"));
        }
        let mut encoded = Vec::with_capacity(segments.len());
        for segment in segments {
            if segment.chars().any(|ch| matches!(ch, '\r' | '\n' | '\0')) {
                return Err(invalid("CR, LF and NUL cannot be part of an IMAP mailbox name"));
            }
            if let Some(delimiter) = self.delimiter {
                if segment.contains(delimiter) {
                    return Err(invalid(&format!(
                        "the segment {segment:?} contains the server's hierarchy delimiter {delimiter:?}"
                    )));
                }
            }
            encoded.push(if self.utf8 { segment.clone() } else { utf7::encode(segment) });
        }
        let joined = encoded.join(&self.delimiter.map(String::from).unwrap_or_default());
        // With an `INBOX.` prefix, `INBOX/Sub` is the prefixed `Sub`, not `INBOX.INBOX.Sub`.
        let prefix_is_inbox = self.prefix_without_delimiter().eq_ignore_ascii_case("INBOX");
        if prefix_is_inbox && segments[0].eq_ignore_ascii_case("INBOX") {
            return Ok(format!("INBOX{}", &joined[5..]));
        }
        Ok(format!("{}{joined}", self.prefix))
    }

    fn prefix_without_delimiter(&self) -> &str {
        match self.delimiter {
            Some(delimiter) => self.prefix.strip_suffix(delimiter).unwrap_or(&self.prefix),
            None => &self.prefix,
        }
    }

    /// The folder path of a listed mailbox, or `None` when it is outside the personal namespace
    /// or cannot be represented (see [`Naming::decode_entry`]).
    #[cfg(test)]
    pub fn decode(&self, raw: &str) -> Option<FolderPath> {
        match self.decode_entry(raw, self.delimiter) {
            Decoded::Path(path) => Some(path),
            Decoded::Outside | Decoded::Unusable(_) => None,
        }
    }

    /// The folder path of a listed mailbox whose LIST entry gave `delimiter` (servers may use
    /// another delimiter below some mailboxes than NAMESPACE announced; the entry's own is the
    /// one that splits its name). Segments that are not valid modified UTF-7 are kept as sent
    /// (the caller remembers the raw name so that it is never re-encoded differently).
    ///
    /// A name that no [`FolderPath`] can keep apart from others is [`Decoded::Unusable`], never
    /// folded into another folder: an empty level (`a//b`, `/a`, `a/`: a path has no empty
    /// segments, so these would all become `a/b` or `a`) and CR, LF or NUL (no command can name
    /// such a mailbox safely).
    pub fn decode_entry(&self, raw: &str, delimiter: Option<char>) -> Decoded {
        if raw.eq_ignore_ascii_case("INBOX") {
            return Decoded::Path(FolderPath::inbox());
        }
        if self.foreign.iter().any(|prefix| !prefix.is_empty() && raw.starts_with(prefix.as_str())) {
            return Decoded::Outside;
        }
        let rest = if self.prefix.is_empty() {
            raw
        } else if raw.len() >= self.prefix.len()
            && raw.is_char_boundary(self.prefix.len())
            && raw[..self.prefix.len()].eq_ignore_ascii_case(&self.prefix)
        {
            &raw[self.prefix.len()..]
        } else {
            return Decoded::Outside;
        };
        if rest.is_empty() {
            // The namespace itself (`INBOX.` listed as a \Noselect parent), not a folder.
            return Decoded::Outside;
        }
        if raw.chars().any(|ch| matches!(ch, '\r' | '\n' | '\0')) {
            return Decoded::Unusable(
                "its name contains CR, LF or NUL, which no IMAP command can name safely".into(),
            );
        }
        let segments: Vec<&str> = match delimiter {
            Some(delimiter) => rest.split(delimiter).collect(),
            None => vec![rest],
        };
        if segments.iter().any(|segment| segment.is_empty()) {
            let delimiter = delimiter.map(String::from).unwrap_or_default();
            return Decoded::Unusable(format!(
                "its name has an empty level (a leading, trailing or doubled {delimiter:?}), so it \
                 cannot be kept apart from the name without it"
            ));
        }
        let decoded: Vec<String> = segments
            .into_iter()
            .map(|segment| {
                if self.utf8 {
                    segment.to_string()
                } else {
                    utf7::decode(segment).unwrap_or_else(|_| segment.to_string())
                }
            })
            .collect();
        Decoded::Path(FolderPath::new(decoded))
    }
}

/// What a listed mailbox name is to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A folder of the personal namespace.
    Path(FolderPath),
    /// Outside the personal namespace (another user's, shared), or the namespace itself.
    Outside,
    /// In the personal namespace, but no folder path can stand for it: the reason.
    Unusable(String),
}

/// Learns the namespace (NAMESPACE when offered, else `LIST "" ""` for the delimiter).
pub(crate) async fn discover(conn: &mut Conn, utf8: bool) -> Result<Naming> {
    let mut naming = Naming { prefix: String::new(), delimiter: None, foreign: Vec::new(), utf8 };
    let mut found_namespace = false;
    if conn.caps.offers(Capability::Namespace) {
        let mut namespaces: Option<Vec<Value>> = None;
        let done = conn
            .run("NAMESPACE", |untagged| {
                if let Untagged::Data(values) = untagged {
                    if values.first().is_some_and(|v| v.is_atom("NAMESPACE")) {
                        namespaces = Some(values[1..].to_vec());
                    }
                }
                Ok(())
            })
            .await?;
        if done.status == Status::Ok {
            if let Some(groups) = namespaces {
                let entries = |group: Option<&Value>| -> Vec<(String, Option<char>)> {
                    group
                        .and_then(Value::list)
                        .unwrap_or(&[])
                        .iter()
                        .filter_map(|entry| {
                            let items = entry.list()?;
                            let prefix = items.first()?.text()?;
                            let delimiter = items.get(1).and_then(Value::text).and_then(|d| d.chars().next());
                            Some((prefix, delimiter))
                        })
                        .collect()
                };
                let personal = entries(groups.first());
                if let Some((prefix, delimiter)) = personal.first() {
                    naming.prefix = prefix.clone();
                    naming.delimiter = *delimiter;
                    found_namespace = true;
                }
                naming.foreign = entries(groups.get(1))
                    .into_iter()
                    .chain(entries(groups.get(2)))
                    .map(|(prefix, _)| prefix)
                    .collect();
            }
        }
    }
    if !found_namespace {
        let mut delimiter = None;
        let done = conn
            .run("LIST \"\" \"\"", |untagged| {
                if let Untagged::Data(values) = untagged {
                    if values.first().is_some_and(|v| v.is_atom("LIST")) {
                        delimiter = values.get(2).and_then(Value::text).and_then(|d| d.chars().next());
                    }
                }
                Ok(())
            })
            .await?;
        if done.status == Status::Ok {
            naming.delimiter = delimiter;
        }
    }
    Ok(naming)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naming(prefix: &str, delimiter: Option<char>, utf8: bool) -> Naming {
        Naming {
            prefix: prefix.into(),
            delimiter,
            foreign: vec!["#shared/".into(), "Other Users/".into()],
            utf8,
        }
    }

    #[test]
    fn encodes_with_prefix_delimiter_and_utf7() {
        let dovecot = naming("", Some('/'), false);
        assert_eq!(dovecot.encode(&FolderPath::parse("Archive/2019")).unwrap(), "Archive/2019");
        assert_eq!(dovecot.encode(&FolderPath::parse("Entwürfe & Co")).unwrap(), "Entw&APw-rfe &- Co");
        assert_eq!(dovecot.encode(&FolderPath::parse("inbox")).unwrap(), "INBOX");
        let courier = naming("INBOX.", Some('.'), false);
        assert_eq!(courier.encode(&FolderPath::parse("Archive/2019")).unwrap(), "INBOX.Archive.2019");
        assert_eq!(courier.encode(&FolderPath::parse("INBOX/Sub")).unwrap(), "INBOX.Sub");
        assert!(matches!(courier.encode(&FolderPath::new(["a.b"])), Err(Error::InvalidFolderName { .. })));
        assert!(matches!(dovecot.encode(&FolderPath::new(["a\r\nb"])), Err(Error::InvalidFolderName { .. })));
        let flat = naming("", None, false);
        assert!(flat.encode(&FolderPath::parse("a/b")).is_err());
        assert_eq!(flat.encode(&FolderPath::parse("a.b")).unwrap(), "a.b");
        let utf8 = naming("", Some('/'), true);
        assert_eq!(utf8.encode(&FolderPath::parse("Entwürfe & Co")).unwrap(), "Entwürfe & Co");
    }

    #[test]
    fn decodes_and_filters_namespaces() {
        let courier = naming("INBOX.", Some('.'), false);
        assert_eq!(courier.decode("INBOX"), Some(FolderPath::inbox()));
        assert_eq!(courier.decode("INBOX.Sent"), Some(FolderPath::parse("Sent")));
        assert_eq!(courier.decode("INBOX.a.b"), Some(FolderPath::parse("a/b")));
        assert_eq!(courier.decode("#shared/x"), None);
        assert_eq!(courier.decode("Outside"), None);
        let dovecot = naming("", Some('/'), false);
        assert_eq!(dovecot.decode("Other Users/bob/x"), None);
        assert_eq!(dovecot.decode("Entw&APw-rfe"), Some(FolderPath::parse("Entwürfe")));
        // Not valid modified UTF-7: kept as sent.
        assert_eq!(dovecot.decode("a&b"), Some(FolderPath::parse("a&b")));
    }

    #[test]
    fn names_no_path_can_keep_apart_are_unusable_not_folded() {
        let dovecot = naming("", Some('/'), false);
        assert_eq!(dovecot.decode_entry("a/b", Some('/')), Decoded::Path(FolderPath::parse("a/b")));
        for raw in ["a//b", "/a/b", "a/b/", "/"] {
            assert!(matches!(dovecot.decode_entry(raw, Some('/')), Decoded::Unusable(_)), "{raw}");
        }
        for raw in ["bad\r\nname", "nul\0", "lf\n"] {
            assert!(matches!(dovecot.decode_entry(raw, Some('/')), Decoded::Unusable(_)), "{raw:?}");
        }
        // ESC is representable (reports escape it for terminals).
        assert!(matches!(dovecot.decode_entry("esc\x1b[31m", Some('/')), Decoded::Path(_)));
        // The entry's own delimiter splits its name.
        assert_eq!(
            dovecot.decode_entry("Archive.2019", Some('.')),
            Decoded::Path(FolderPath::parse("Archive/2019"))
        );
        let courier = naming("INBOX.", Some('.'), false);
        assert_eq!(courier.decode_entry("INBOX.", Some('.')), Decoded::Outside);
    }

    proptest! {
        #[test]
        fn round_trips(segments in proptest::collection::vec("[^/\r\n\u{0}]{1,8}", 1..4), prefix in prop_oneof![Just(""), Just("INBOX/")], utf8: bool) {
            let path = FolderPath::new(segments);
            prop_assume!(!path.segments()[0].eq_ignore_ascii_case("INBOX"));
            let naming = naming(prefix, Some('/'), utf8);
            let encoded = naming.encode(&path).unwrap();
            prop_assume!(!naming.foreign.iter().any(|f| encoded.starts_with(f.as_str())));
            prop_assert_eq!(naming.decode(&encoded).unwrap(), path);
        }
    }
}
