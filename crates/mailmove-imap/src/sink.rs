//! The [`MailSink`] side: CREATE, APPEND (flags within PERMANENTFLAGS, INTERNALDATE, literal8
//! for NUL bytes, APPENDUID), and listing what a folder holds for dedup.

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::{
    fingerprint, Appended, Error, ExistingMessage, FolderInfo, FolderPath, MailSink, Message, MessageBody,
    Result, SinkCapabilities,
};

use crate::conn::{Conn, Part};
use crate::errors;
use crate::source::search_uids;
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

fn contains_nul(body: &MessageBody) -> Result<bool> {
    let mut found = false;
    body.for_each_chunk(|chunk| found |= chunk.contains(&0))?;
    Ok(found)
}

impl Inner {
    async fn append_once(
        &self,
        conn: &mut Conn,
        mailbox: &str,
        message: &Message,
        binary: bool,
    ) -> Result<crate::wire::StatusResponse> {
        let known = self.permanent_flags.lock().unwrap_or_else(|p| p.into_inner()).get(mailbox).cloned();
        let permanent = match known {
            Some(flags) => Some(flags),
            // Learn the folder's PERMANENTFLAGS once (SELECT is read-write but changes nothing we
            // carry; the connection never EXPUNGEs or CLOSEs).
            None => match self.select(conn, mailbox, false).await {
                Ok(info) => info.permanent_flags,
                Err(Error::NotFound { .. }) => None,
                Err(other) => return Err(other),
            },
        };
        let flags = flags_for_append(&message.meta.flags, permanent.as_deref());
        let mut command = format!("APPEND {} ({})", self.quoted(mailbox)?, flags.join(" "));
        if let Some(date) = &message.meta.internal_date {
            command.push(' ');
            command.push_str(&format_internal_date(date));
        }
        command.push(' ');
        let parts = [Part::Text(command), Part::Literal { data: &message.body, binary }];
        conn.run_parts(&parts, |_| Ok(())).await
    }

    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        let size = message.body.len();
        let limit = self.caps.append_limit();
        if let Some(limit) = limit.filter(|limit| size > *limit) {
            return Err(Error::TooBig { size, limit: Some(limit) });
        }
        let binary = contains_nul(&message.body)?;
        if binary && !self.caps.has("BINARY") {
            return Err(Error::Refused {
                reason: "the message contains NUL bytes and the server does not offer BINARY (RFC 3516)"
                    .into(),
            });
        }
        let mailbox = self.mailbox(folder)?;
        let mut pooled = self.acquire().await?;
        let conn = pooled.conn();
        let mut done = self.append_once(conn, &mailbox, message, binary).await?;
        if done.status == Status::No && done.has_code("TRYCREATE") {
            self.create(conn, folder).await?;
            done = self.append_once(conn, &mailbox, message, binary).await?;
        }
        if done.status != Status::Ok {
            return Err(errors::from_status(&format!("APPEND to {folder}"), &done, Some(size), limit));
        }
        let appended = done.code.as_ref().filter(|code| code.name == "APPENDUID").and_then(|code| {
            let mut args = code.args.split_whitespace();
            Some((args.next()?.parse::<u32>().ok()?, args.next()?.parse::<u32>().ok()?))
        });
        if binary {
            if let Some((_, uid)) = appended {
                self.verify_binary_append(conn, &mailbox, uid, message).await?;
            }
        }
        Ok(match appended {
            Some((validity, uid)) => Appended::with_key(format!("{validity}:{uid}")),
            None => Appended::unknown(),
        })
    }

    /// Servers may re-encode binary MIME parts when they store a literal8 (Dovecot turns
    /// `Content-Transfer-Encoding: binary` parts into base64). Such a copy is not the message: it
    /// is removed again (our own just-appended UID only) and the message reported as refused.
    async fn verify_binary_append(
        &self,
        conn: &mut Conn,
        mailbox: &str,
        uid: u32,
        message: &Message,
    ) -> Result<()> {
        self.select(conn, mailbox, false).await?;
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

    /// EXAMINE for listing; `None` when the folder does not exist.
    async fn examine_existing(&self, folder: &FolderPath) -> Result<Option<(String, Option<u32>, Vec<u32>)>> {
        let mailbox = self.mailbox(folder)?;
        let mut pooled = self.acquire().await?;
        let conn = pooled.conn();
        let info = match self.select(conn, &mailbox, true).await {
            Ok(info) => info,
            Err(Error::NotFound { .. }) if !self.exists(conn, &mailbox).await? => return Ok(None),
            Err(error) => return Err(error),
        };
        let uids = search_uids(conn, 1).await?;
        Ok(Some((mailbox, info.uid_validity, uids)))
    }

    async fn existing_chunk(
        &self,
        mailbox: &str,
        validity: Option<u32>,
        uids: &[u32],
    ) -> Result<Vec<ExistingMessage>> {
        let mut pooled = self.acquire().await?;
        self.examine_checked(pooled.conn(), mailbox, validity).await?;
        let fetched = self.fetch_bodies(pooled.conn(), uids, "UID RFC822.SIZE BODY.PEEK[]").await?;
        drop(pooled);
        let mut out = Vec::with_capacity(fetched.len());
        for (uid, item) in fetched {
            let Some(body) = item.body else {
                return Err(Error::protocol(format!("the server sent no body for UID {uid} in {mailbox}")));
            };
            let key = validity.map(|v| format!("{v}:{uid}"));
            out.push(ExistingMessage::new(key, body.len(), fingerprint::strict(&body)?));
        }
        Ok(out)
    }
}

#[async_trait]
impl MailSink for ImapStore {
    fn identity(&self) -> String {
        self.inner.config.identity()
    }

    fn capabilities(&self) -> SinkCapabilities {
        // `#[non_exhaustive]` forbids a struct expression (even with `..default()`) across crates.
        let mut capabilities = SinkCapabilities::default();
        capabilities.flags = true;
        capabilities.keywords = true;
        capabilities.internal_dates = true;
        capabilities.binary = self.inner.caps.has("BINARY");
        capabilities.folders = true;
        capabilities.max_message_size = self.inner.caps.append_limit();
        capabilities.max_concurrency = self.inner.config.max_connections;
        capabilities
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        self.inner.list_folders().await
    }

    async fn create_folder(&self, folder: &FolderPath) -> Result<()> {
        let mut pooled = self.inner.acquire().await?;
        self.inner.create(pooled.conn(), folder).await
    }

    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        self.inner.append(folder, message).await
    }

    /// Fetches every message of the folder in chunks and fingerprints it: this reads the whole
    /// folder over the network (the cost of strict dedup on IMAP); memory stays bounded by the
    /// chunk size and the spool threshold.
    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        let inner = &*self.inner;
        let chunk = inner.config.fetch_chunk.max(1);
        stream::once(async move { inner.examine_existing(folder).await })
            .flat_map(move |started| -> BoxStream<'a, Result<ExistingMessage>> {
                match started {
                    Err(error) => stream::iter(vec![Err(error)]).boxed(),
                    Ok(None) => stream::empty().boxed(),
                    Ok(Some((mailbox, validity, uids))) => {
                        let chunks: Vec<Vec<u32>> = uids.chunks(chunk).map(<[u32]>::to_vec).collect();
                        stream::iter(chunks)
                            .then(move |uids| {
                                let mailbox = mailbox.clone();
                                async move {
                                    match inner.existing_chunk(&mailbox, validity, &uids).await {
                                        Ok(items) => items.into_iter().map(Ok).collect::<Vec<_>>(),
                                        Err(error) => vec![Err(error)],
                                    }
                                }
                            })
                            .flat_map(stream::iter)
                            .boxed()
                    }
                }
            })
            .boxed()
    }

    /// A no-op: an IMAP server answers OK to APPEND only once the message is stored.
    async fn flush(&self, _folder: &FolderPath) -> Result<()> {
        Ok(())
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
