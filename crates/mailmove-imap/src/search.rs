//! The store's own search ([`MailSource::search`](mailmove_core::MailSource::search)): one
//! `UID SEARCH` per folder with the selection's criteria, so that only the messages the server
//! finds are fetched.
//!
//! # What is sent
//! `UID SEARCH [CHARSET UTF-8] key key ...`, the keys ANDed as IMAP does with juxtaposed keys:
//! * each Message-ID: `HEADER Message-ID id`, without angle brackets (a `HEADER` search is a
//!   substring search: the bare ID finds the field however it is bracketed); several IDs are
//!   alternatives, `OR HEADER Message-ID a OR HEADER Message-ID b HEADER Message-ID c`;
//! * each `from`, `subject`, `text` value: `FROM`, `SUBJECT`, `TEXT`, once per word of the value.
//!   The words of a phrase are ANDed rather than sent as one string: the local match counts any
//!   run of white space as one space (a phrase may be wrapped over two lines), which a server's
//!   substring search would not, so the server is asked for what every match surely contains.
//!
//! A value in ASCII goes as a quoted string; any other as a literal (synchronising unless the
//! server offers `LITERAL+`, or `LITERAL-` for small ones) and the command names `CHARSET UTF-8`,
//! except once `UTF8=ACCEPT` is enabled: RFC 6855 §3 forbids a charset then (UTF-8 is the
//! default).
//!
//! # What comes back
//! SEARCH is a case-insensitive substring search (RFC 3501 §6.4.4), but servers differ: how they
//! decode encoded words and parts, fold case, treat white space; some search only a prefix of a
//! large body. The answer is therefore a list of candidates: the engine matches every fetched
//! message again ([`mailmove_core::selection`]), so a server's false positive is left out. A
//! message the server does not find is never fetched: its false negatives cannot be recovered.
//! A server that refuses the command (`NO [BADCHARSET]`, `BAD`) makes the caller match every
//! message of the folder locally, with a warning.

use mailmove_core::selection::{normalise_message_id, SearchCriteria};
use mailmove_core::{FolderPath, MessageBody, Result};

use crate::conn::Part;
use crate::errors;
use crate::protocol::search::search_finish;
use crate::protocol::select::{self, Selecting};
use crate::store::Inner;
use crate::wire::quote;

/// One piece of the command: text as it is, or a value that must go as a literal.
#[derive(Debug)]
enum Token {
    Text(String),
    Literal(MessageBody),
}

/// `UID SEARCH` for some criteria, built once and sent as [`Part`]s.
#[derive(Debug)]
pub(crate) struct SearchCommand {
    tokens: Vec<Token>,
}

impl SearchCommand {
    /// The command for `criteria` (not empty); `utf8_enabled`: `UTF8=ACCEPT` is on.
    pub fn new(criteria: &SearchCriteria, utf8_enabled: bool) -> Result<SearchCommand> {
        criteria.validate()?;
        let mut keys = Keys::default();
        let ids: Vec<String> = criteria.message_id.iter().map(|id| normalise_message_id(id)).collect();
        for (index, id) in ids.iter().enumerate() {
            if index + 1 < ids.len() {
                keys.text("OR ");
            }
            keys.key("HEADER Message-ID", id);
        }
        for (key, values) in
            [("FROM", &criteria.from), ("SUBJECT", &criteria.subject), ("TEXT", &criteria.text)]
        {
            for word in values.iter().flat_map(|value| value.split_whitespace()) {
                keys.key(key, word);
            }
        }
        let charset = keys.literals && !utf8_enabled;
        let mut tokens =
            vec![Token::Text(format!("UID SEARCH {}", if charset { "CHARSET UTF-8 " } else { "" }))];
        tokens.append(&mut keys.tokens);
        // The last key's separating space.
        if let Some(Token::Text(last)) = tokens.last_mut() {
            if last.ends_with(' ') {
                last.pop();
            }
        }
        Ok(SearchCommand { tokens })
    }

    /// The command as [`Conn::send_parts`](crate::conn::Conn::send_parts) takes it.
    pub fn parts(&self) -> Vec<Part<'_>> {
        self.tokens
            .iter()
            .map(|token| match token {
                Token::Text(text) => Part::Text(text.clone()),
                Token::Literal(data) => Part::Literal { data, binary: false },
            })
            .collect()
    }
}

/// The keys of a command as they are written.
#[derive(Default)]
struct Keys {
    tokens: Vec<Token>,
    literals: bool,
}

impl Keys {
    fn text(&mut self, text: &str) {
        match self.tokens.last_mut() {
            Some(Token::Text(last)) => last.push_str(text),
            _ => self.tokens.push(Token::Text(text.to_string())),
        }
    }

    /// `name value ` with the value quoted, or as a literal when it is not ASCII.
    fn key(&mut self, name: &str, value: &str) {
        self.text(name);
        self.text(" ");
        // Validated: no CR, LF or NUL, which `quote` would refuse.
        match quote(value) {
            Ok(quoted) if value.is_ascii() => self.text(&quoted),
            _ => {
                self.literals = true;
                self.tokens.push(Token::Literal(MessageBody::from(value.as_bytes().to_vec())));
            }
        }
        self.text(" ");
    }
}

impl Inner {
    /// The UIDs of `folder` the server finds for `criteria`, sorted: a fresh EXAMINE (the
    /// mailbox as it is now, its UIDVALIDITY the listing's), then the search.
    pub(crate) async fn search_uids(
        &self,
        folder: &FolderPath,
        criteria: &SearchCriteria,
    ) -> Result<Vec<u32>> {
        let mailbox = self.mailbox(folder)?;
        let command = SearchCommand::new(criteria, self.mailboxes.naming().utf8)?;
        // Read-your-writes when this store is also the sink.
        self.settle_mailbox(&mailbox).await;
        let mut pooled = self.acquire_for(Some(&mailbox)).await?;
        let conn = pooled.conn();
        let info = match select::start(conn, &mailbox, true, true).await? {
            Selecting::Already(info) => info,
            Selecting::Sent(tag) => self.select_finish(conn, &tag, &mailbox, true).await?,
        };
        self.mailboxes.check_listed_validity(&mailbox, info.uid_validity)?;
        let tag = conn.tag();
        // A server that ends the command instead of taking a literal has answered it.
        if let Some(done) = conn.send_parts(&tag, &command.parts(), &mut |_| Ok(())).await? {
            return Err(errors::from_status("UID SEARCH", &done, None, None));
        }
        let uids = search_finish(conn, &tag, 0).await?;
        tracing::debug!(%mailbox, found = uids.len(), "UID SEARCH");
        Ok(uids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command as it would go on the wire (literals synchronising, as `{n}`).
    fn written(criteria: SearchCriteria, utf8: bool) -> String {
        let command = SearchCommand::new(&criteria, utf8).unwrap();
        command
            .tokens
            .iter()
            .map(|token| match token {
                Token::Text(text) => text.clone(),
                Token::Literal(data) => {
                    let bytes = data.to_bytes().unwrap();
                    format!("{{{}}}\r\n{}", bytes.len(), String::from_utf8(bytes.to_vec()).unwrap())
                }
            })
            .collect()
    }

    #[test]
    fn ascii_values_are_quoted_and_keys_anded() {
        let criteria = SearchCriteria {
            message_id: vec!["<a1@example.org>".into()],
            from: vec!["ana@example.org".into()],
            subject: vec!["say \"hi\"".into()],
            text: vec!["back\\slash".into()],
        };
        assert_eq!(
            written(criteria, false),
            "UID SEARCH HEADER Message-ID \"a1@example.org\" FROM \"ana@example.org\" SUBJECT \"say\" \
             SUBJECT \"\\\"hi\\\"\" TEXT \"back\\\\slash\""
        );
    }

    #[test]
    fn several_message_ids_are_alternatives() {
        let ids = ["a@x", "<b@x>", "c@x"].map(String::from).to_vec();
        let criteria = SearchCriteria { message_id: ids, subject: vec!["s".into()], ..Default::default() };
        assert_eq!(
            written(criteria, false),
            "UID SEARCH OR HEADER Message-ID \"a@x\" OR HEADER Message-ID \"b@x\" HEADER Message-ID \"c@x\" \
             SUBJECT \"s\""
        );
    }

    #[test]
    fn other_values_go_as_literals_with_the_charset_unless_utf8_is_enabled() {
        let criteria = SearchCriteria { subject: vec!["Réunion  Q3".into()], ..Default::default() };
        assert_eq!(
            written(criteria.clone(), false),
            "UID SEARCH CHARSET UTF-8 SUBJECT {8}\r\nRéunion SUBJECT \"Q3\""
        );
        assert_eq!(written(criteria, true), "UID SEARCH SUBJECT {8}\r\nRéunion SUBJECT \"Q3\"");
        let last = SearchCriteria { text: vec!["ünï".into()], ..Default::default() };
        assert_eq!(written(last, false), "UID SEARCH CHARSET UTF-8 TEXT {5}\r\nünï");
    }

    #[test]
    fn invalid_criteria_are_refused_before_anything_is_sent() {
        let criteria = SearchCriteria { from: vec!["a\r\nb".into()], ..Default::default() };
        assert!(SearchCommand::new(&criteria, false).is_err());
    }
}
