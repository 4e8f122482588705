//! The [`MailSink`] side: CREATE, APPEND (flags within PERMANENTFLAGS, INTERNALDATE, literal8
//! for NUL bytes, APPENDUID), and listing what a folder holds for dedup.

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use futures::stream::BoxStream;
use mailmove_core::{
    fingerprint, Appended, Error, ExistingMessage, FolderInfo, FolderPath, MailSink, Message, MessageBody,
    Result, SinkCapabilities,
};

use crate::conn::Conn;
use crate::store::{ImapStore, Inner};
use crate::wire::Status;

/// Formats an INTERNALDATE for APPEND: `"02-Jan-2017 10:00:00 +0000"` (English month names).
pub(crate) fn format_internal_date(date: &DateTime<FixedOffset>) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    use chrono::{Datelike, Timelike};
    let offset = date.offset().local_minus_utc();
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.unsigned_abs();
    format!(
        "\"{:02}-{}-{:04} {:02}:{:02}:{:02} {sign}{:02}{:02}\"",
        date.day(),
        MONTHS[date.month0() as usize % 12],
        date.year(),
        date.hour(),
        date.minute(),
        date.second(),
        offset / 3600,
        offset % 3600 / 60
    )
}

/// Whether a keyword can be sent as an IMAP atom (anything else cannot be stored on IMAP).
fn is_atom(keyword: &str) -> bool {
    !keyword.is_empty() && keyword.bytes().all(|b| (0x21..0x7f).contains(&b) && !b"(){%*\"\\]".contains(&b))
}

/// The flag list for APPEND: the message's flags that the folder's PERMANENTFLAGS allow
/// (keywords only with `\*`); every flag when PERMANENTFLAGS is unknown.
pub(crate) fn flags_for_append(flags: &mailmove_core::Flags, permanent: Option<&[String]>) -> Vec<String> {
    let allows = |flag: &str| match permanent {
        None => true,
        Some(list) => list.iter().any(|p| p.eq_ignore_ascii_case(flag)),
    };
    let keywords_allowed = permanent.is_none_or(|list| list.iter().any(|p| p == "\\*"));
    flags
        .to_imap_list()
        .into_iter()
        .filter(|flag| {
            if flag.starts_with('\\') {
                allows(flag)
            } else if !is_atom(flag) {
                tracing::warn!("keyword {flag:?} cannot be sent to an IMAP server; dropped");
                false
            } else {
                keywords_allowed || allows(flag)
            }
        })
        .collect()
}

pub(crate) fn contains_nul(body: &MessageBody) -> Result<bool> {
    let mut found = false;
    body.for_each_chunk(|chunk| found |= chunk.contains(&0))?;
    Ok(found)
}

impl Inner {
    /// Servers may re-encode binary MIME parts when they store a literal8 (Dovecot turns
    /// `Content-Transfer-Encoding: binary` parts into base64). Such a copy is not the message: it
    /// is removed again (our own just-appended UID only) and the message reported as refused.
    pub(crate) async fn verify_binary_append(
        &self,
        conn: &mut Conn,
        mailbox: &str,
        uid: u32,
        message: &Message,
    ) -> Result<()> {
        self.select_fresh(conn, mailbox, false).await?;
        let stored = self.fetch_bodies(conn, &[uid], "UID BODY.PEEK[]").await?;
        let Some(body) = stored.get(&uid).and_then(|item| item.body.as_ref()) else {
            return Ok(());
        };
        if fingerprint::strict(body)? == fingerprint::strict(&message.body)? {
            return Ok(());
        }
        let mut removed = false;
        if self.caps.has("UIDPLUS") {
            let flagged = conn.run(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"), |_| Ok(())).await?;
            if flagged.status == Status::Ok {
                removed = conn.run(&format!("UID EXPUNGE {uid}"), |_| Ok(())).await?.status == Status::Ok;
            }
        }
        Err(Error::Refused {
            reason: format!(
                "the server re-encoded the message's binary content when storing it{}",
                if removed { " (the altered copy was removed)" } else { "; an altered copy remains" }
            ),
        })
    }
}

#[async_trait]
impl MailSink for ImapStore {
    fn identity(&self) -> String {
        self.inner.config.identity()
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::default()
            .with_flags(true)
            .with_keywords(true)
            .with_internal_dates(true)
            .with_binary(self.inner.caps.has("BINARY"))
            .with_folders(true)
            .with_max_message_size(self.inner.caps.append_limit())
            .with_max_concurrency(self.inner.config.max_connections)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        self.inner.list_folders().await
    }

    async fn create_folder(&self, folder: &FolderPath) -> Result<()> {
        let mut pooled = self.inner.acquire().await?;
        self.inner.create(pooled.conn(), folder).await
    }

    /// Pipelined unless the message has NUL bytes or `pipeline=0`: confirmed by [`flush`]
    /// (see the crate docs).
    ///
    /// [`flush`]: MailSink::flush
    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        self.inner.append_message(folder, message).await
    }

    /// Fingerprints every message of the folder: bodies are downloaded and hashed as they
    /// arrive; fingerprints are remembered by UID, so a second listing of the folder downloads
    /// only what arrived since.
    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        self.inner.list_existing(folder)
    }

    /// Reads the answer of every APPEND still in flight to `folder`; `Ok` only when the server
    /// confirmed all of them (an IMAP server answers OK only once the message is stored).
    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        self.inner.flush_appends(folder).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use mailmove_core::Flags;

    #[test]
    fn internal_date_format() {
        let date =
            FixedOffset::west_opt(5 * 3600 + 1800).unwrap().with_ymd_and_hms(2020, 2, 9, 7, 5, 3).unwrap();
        assert_eq!(format_internal_date(&date), "\"09-Feb-2020 07:05:03 -0530\"");
        let date = FixedOffset::east_opt(0).unwrap().with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(format_internal_date(&date), "\"31-Dec-1999 23:59:59 +0000\"");
        let round =
            crate::source::parse_internal_date(format_internal_date(&date).trim_matches('"')).unwrap();
        assert_eq!(round, date);
    }

    #[test]
    fn flags_limited_to_permanent_flags() {
        let flags = Flags::from_imap_list(["\\Seen", "\\Draft", "$Work", "bad word", "x(y"]);
        let all: Vec<String> = vec!["\\Seen".into(), "\\Draft".into(), "\\*".into()];
        assert_eq!(flags_for_append(&flags, Some(&all)), vec!["\\Seen", "\\Draft", "$Work"]);
        let no_keywords: Vec<String> = vec!["\\Seen".into()];
        assert_eq!(flags_for_append(&flags, Some(&no_keywords)), vec!["\\Seen"]);
        assert_eq!(flags_for_append(&flags, None), vec!["\\Seen", "\\Draft", "$Work"]);
    }
}
