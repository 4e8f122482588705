//! Provider profiles (issue 15): what a migration must know of the providers most migrations come
//! from or go to, each fact with its source (../shared/PROVIDERS.md gathers them).
//!
//! A profile is used where it changes what a run does or predicts:
//! * as the **source**, its folders that hold no mail over IMAP (calendars, contacts, tasks) are
//!   left out of the copy and of verification, and listed with the reason
//!   ([`MessageFilter::left_out`](crate::engine::MessageFilter::left_out));
//! * as the **destination**, the preflight checks its reserved folder names and, when the server
//!   does not say (no `APPENDLIMIT`), its known largest message.
//!
//! A provider is named (`--src-provider microsoft365`) or recognised from the server's host name
//! ([`Provider::from_host`]); nothing else is guessed.

use serde::{Deserialize, Serialize};

use crate::engine::LeftOut;
use crate::labels::LabelPolicy;

/// A provider with a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Provider {
    /// Gmail and Google Workspace.
    Gmail,
    /// Microsoft 365 (Exchange Online).
    Microsoft365,
    /// Exchange on premises.
    Exchange,
    /// Zimbra.
    Zimbra,
}

/// Folders Exchange (on premises and online) shows over IMAP that hold no mail.
const EXCHANGE_NON_MAIL: &[&str] =
    &["Calendar", "Contacts", "Conversation History", "Journal", "Notes", "Tasks", "Sync Issues", "Files"];

/// The rates a provider holds a copy into it to ([`Provider::rates`]); `None` when not known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rates {
    /// Messages it takes an hour.
    pub messages_per_hour: Option<u64>,
    /// Bytes it takes an hour.
    pub upload_bytes_per_hour: Option<u64>,
    /// Bytes it takes a day (an allowance: spent at once, then nothing until the next day).
    pub upload_bytes_per_day: Option<u64>,
}

impl Rates {
    /// The least time, in seconds, these rates allow for `messages` messages of `bytes` bytes in
    /// all, with the rate that bounds it; `None` when no rate is known or none binds. A daily
    /// allowance counts the whole days waited (the last day's share goes at once).
    pub fn least_duration(&self, messages: u64, bytes: u64) -> Option<(u64, String)> {
        let mut bounds = Vec::new();
        if let Some(rate) = self.messages_per_hour.filter(|rate| *rate > 0) {
            bounds.push((messages.saturating_mul(3_600) / rate, format!("{rate} messages an hour")));
        }
        if let Some(rate) = self.upload_bytes_per_hour.filter(|rate| *rate > 0) {
            bounds.push((bytes.saturating_mul(3_600) / rate, format!("{:.0} MB an hour", rate as f64 / 1e6)));
        }
        if let Some(rate) = self.upload_bytes_per_day.filter(|rate| *rate > 0) {
            let days_waited = bytes.div_ceil(rate).saturating_sub(1);
            bounds.push((
                days_waited * 86_400,
                format!("an upload allowance of {:.0} MB a day", rate as f64 / 1e6),
            ));
        }
        bounds.into_iter().filter(|(secs, _)| *secs > 0).max_by_key(|(secs, _)| *secs)
    }
}

impl Provider {
    /// Every provider with a profile.
    pub const ALL: [Provider; 4] =
        [Provider::Gmail, Provider::Microsoft365, Provider::Exchange, Provider::Zimbra];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Gmail => "gmail",
            Provider::Microsoft365 => "microsoft365",
            Provider::Exchange => "exchange",
            Provider::Zimbra => "zimbra",
        }
    }

    /// The provider named `name` (as [`Provider::name`] spells it, any case).
    pub fn parse(name: &str) -> Option<Provider> {
        Self::ALL.into_iter().find(|provider| provider.name().eq_ignore_ascii_case(name))
    }

    /// The provider whose IMAP servers answer at `host`, when it is one of the well-known names
    /// (`imap.gmail.com`, `outlook.office365.com`); on-premises Exchange and Zimbra have no such
    /// names and are named explicitly.
    pub fn from_host(host: &str) -> Option<Provider> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
        if under("gmail.com") || under("googlemail.com") {
            Some(Provider::Gmail)
        } else if under("office365.com") || under("outlook.com") {
            Some(Provider::Microsoft365)
        } else {
            None
        }
    }

    /// Top-level folders that hold no mail over IMAP (with their subfolders): left out when the
    /// provider is the source.
    pub fn non_mail_folders(self) -> &'static [&'static str] {
        match self {
            // Chat history and the inbox categories are not in IMAP at all.
            Provider::Gmail => &[],
            Provider::Microsoft365 | Provider::Exchange => EXCHANGE_NON_MAIL,
            Provider::Zimbra => &["Contacts", "Emailed Contacts", "Calendar", "Tasks", "Briefcase", "Chats"],
        }
    }

    /// Folder names the provider refuses to create (a destination).
    pub fn reserved_names(self) -> &'static [&'static str] {
        match self {
            // "NO Folder name is reserved".
            Provider::Microsoft365 | Provider::Exchange => &["Files"],
            Provider::Gmail | Provider::Zimbra => &[],
        }
    }

    /// The largest message the provider takes, when its server does not say (`APPENDLIMIT`
    /// wins): Gmail advertises 35,651,584 bytes; Microsoft's IMAP migration takes 35 MB a message
    /// (the mailbox default; up to 150 MB when the administrator raised it). Exchange on premises
    /// and Zimbra are configured per site: unknown.
    pub fn max_message_size(self) -> Option<u64> {
        match self {
            Provider::Gmail => Some(35_651_584),
            Provider::Microsoft365 => Some(35 * 1024 * 1024),
            Provider::Exchange | Provider::Zimbra => None,
        }
    }

    /// The longest line the provider takes in a message, when known: Exchange refuses an APPEND
    /// with a longer one ("BAD Command Argument Error 11"; about 9,900 characters on premises,
    /// 10,500 online, so 9,900 for both). What `--encode-long-lines` re-encodes above.
    pub fn max_line_length(self) -> Option<usize> {
        match self {
            Provider::Microsoft365 | Provider::Exchange => Some(9_900),
            Provider::Gmail | Provider::Zimbra => None,
        }
    }

    /// Keywords better not given to the provider: Exchange turns `$MDNSent` (a read receipt was
    /// sent) into a category the user sees on the message (imapsync's FAQ.Exchange.txt and
    /// FAQ.Flags.txt).
    pub fn keywords_left_out(self) -> &'static [&'static str] {
        match self {
            Provider::Microsoft365 | Provider::Exchange => &["$MDNSent"],
            Provider::Gmail | Provider::Zimbra => &[],
        }
    }

    /// Whether the provider compares folder names without case ("trash" beside "Trash" is
    /// "Mailbox already exists"): two source folders whose names differ only in case would be
    /// one folder there.
    pub fn case_insensitive_names(self) -> bool {
        matches!(self, Provider::Microsoft365 | Provider::Exchange)
    }

    /// The rates the provider holds a copy to, when known: what bounds how fast a copy into it
    /// can finish (the preflight's estimate).
    pub fn rates(self) -> Rates {
        match self {
            // About 500 MB of IMAP upload a day per account (secondary copies of Google's
            // bandwidth page).
            Provider::Gmail => Rates { upload_bytes_per_day: Some(500_000_000), ..Rates::default() },
            // 3,600 messages an hour received per mailbox; about 300 MB an hour per user (a
            // third-party figure).
            Provider::Microsoft365 => Rates {
                messages_per_hour: Some(3_600),
                upload_bytes_per_hour: Some(300_000_000),
                ..Rates::default()
            },
            Provider::Exchange | Provider::Zimbra => Rates::default(),
        }
    }

    /// Where the profile's facts come from.
    pub fn sources(self) -> &'static str {
        match self {
            Provider::Gmail => {
                "Google's IMAP extension documentation; imapsync FAQ.Gmail.txt, FAQ.Messages_Too_Big.txt"
            }
            Provider::Microsoft365 => "imapsync FAQ.Office365.txt; Microsoft's IMAP migration documentation",
            Provider::Exchange => "imapsync FAQ.Exchange.txt, FAQ.Office365.txt",
            Provider::Zimbra => "imapsync FAQ (Zimbra)",
        }
    }

    /// The folders this provider's profile leaves out as a source, with the reason: its folders
    /// that hold no mail, and Gmail's views (Starred, Important) and, unless the label policy
    /// copies them, Spam and Trash ([`gmail_left_out`](crate::labels::gmail_left_out)).
    pub fn left_out(self, labels: &LabelPolicy) -> Vec<LeftOut> {
        if self == Provider::Gmail {
            return labels.gmail_left_out();
        }
        self.non_mail_folders()
            .iter()
            .map(|folder| {
                LeftOut::new(
                    *folder,
                    format!("not mail over IMAP ({} profile; {})", self.name(), self.sources()),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hosts_and_facts() {
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(&provider.name().to_uppercase()), Some(provider));
        }
        assert_eq!(Provider::from_host("imap.gmail.com"), Some(Provider::Gmail));
        assert_eq!(Provider::from_host("outlook.office365.com."), Some(Provider::Microsoft365));
        assert_eq!(Provider::from_host("mail.notgmail.com"), None);
        assert_eq!(Provider::from_host("127.0.0.1"), None);
        assert!(Provider::Zimbra.non_mail_folders().contains(&"Briefcase"));
        assert_eq!(Provider::Microsoft365.reserved_names(), ["Files"]);
        let gmail: Vec<String> =
            Provider::Gmail.left_out(&LabelPolicy::default()).into_iter().map(|l| l.folder).collect();
        assert_eq!(gmail, ["[Gmail]/Starred", "[Gmail]/Important", "[Gmail]/Spam", "[Gmail]/Trash"]);
        let gmail_rates = Provider::Gmail.rates();
        assert_eq!(gmail_rates.least_duration(10, 400_000_000), None, "within a day's allowance");
        assert_eq!(gmail_rates.least_duration(10, 1_200_000_000).unwrap().0, 2 * 86_400);
        let (secs, basis) = Provider::Microsoft365.rates().least_duration(7_200, 1_000).unwrap();
        assert_eq!((secs, basis.as_str()), (7_200, "3600 messages an hour"));
        let with_trash = LabelPolicy::default().with_spam_and_trash(true);
        assert_eq!(Provider::Gmail.left_out(&with_trash).len(), 2);
    }
}
