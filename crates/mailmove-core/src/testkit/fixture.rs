//! The fixture the checks write, or expect a source to hold.

use chrono::{DateTime, FixedOffset, TimeZone};

use crate::backend::MailSink;
use crate::error::Error;
use crate::flags::Flags;
use crate::folder::FolderPath;
use crate::message::{Message, MessageBody, MessageMeta};

/// One message of a fixture.
#[derive(Debug, Clone)]
pub struct FixtureMessage {
    /// The raw bytes.
    pub body: Vec<u8>,
    /// Its flags.
    pub flags: Flags,
    /// Its internal date (whole seconds).
    pub internal_date: Option<DateTime<FixedOffset>>,
}

/// One folder of a fixture.
#[derive(Debug, Clone)]
pub struct FixtureFolder {
    /// The folder.
    pub path: FolderPath,
    /// Its messages, in order.
    pub messages: Vec<FixtureMessage>,
}

/// A set of folders and messages that a check writes, or expects a source to hold.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The folders.
    pub folders: Vec<FixtureFolder>,
}

pub(super) fn date(year: i32, month: u32, day: u32, offset_hours: i32) -> Option<DateTime<FixedOffset>> {
    FixedOffset::east_opt(offset_hours * 3600)?.with_ymd_and_hms(year, month, day, 9, 30, 15).single()
}

pub(super) fn message(index: usize, extra_header: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Sender {index} <sender{index}@example.org>\r\nTo: rcpt@example.net\r\nSubject: fixture message {index}\r\nDate: Mon, 2 Jan 2017 10:00:{:02} +0000\r\nMessage-ID: <fixture-{index}@mailmove.test>\r\n{extra_header}\r\n{body}",
        index % 60
    )
    .into_bytes()
}

impl Fixture {
    /// The standard fixture: an inbox with awkward but legal content, a nested folder, a folder
    /// whose name needs encoding (non-ASCII, `&`, space), and an empty folder. Line endings are
    /// CRLF so that every store, IMAP included, can hold the bytes unchanged.
    pub fn standard() -> Fixture {
        let keywords: Flags = Flags::from_imap_list(["\\Seen", "$Forwarded", "Work"]);
        let inbox = vec![
            FixtureMessage {
                body: message(1, "", "Hello.\r\n"),
                flags: Flags::empty(),
                internal_date: date(2017, 1, 2, 0),
            },
            FixtureMessage {
                body: message(
                    2,
                    "X-Note: =?UTF-8?Q?caf=C3=A9?=\r\n",
                    "From the start of a line\r\n>From quoted\r\n.\r\n..two dots\r\n",
                ),
                flags: Flags::from_imap_list(["\\Seen", "\\Answered"]),
                internal_date: date(2001, 9, 9, 2),
            },
            FixtureMessage {
                body: message(3, "", &format!("{}\r\n", "x".repeat(20_000))),
                flags: Flags::from_imap_list(["\\Flagged"]),
                internal_date: date(2020, 2, 29, -5),
            },
            FixtureMessage {
                body: message(4, "", "no final newline"),
                flags: keywords,
                internal_date: date(2024, 12, 31, 1),
            },
            FixtureMessage {
                body: message(
                    5,
                    "Subject-8bit: gr\u{fc}\u{df}e\r\n",
                    &"line of a longer body\r\n".repeat(5000),
                ),
                flags: Flags::from_imap_list(["\\Seen", "\\Draft"]),
                internal_date: date(2010, 6, 15, 0),
            },
            // The same bytes as message 1: sources may hold duplicates and they must both travel.
            FixtureMessage {
                body: message(1, "", "Hello.\r\n"),
                flags: Flags::empty(),
                internal_date: date(2017, 1, 2, 0),
            },
        ];
        let nested = vec![
            FixtureMessage {
                body: message(10, "", "Nested one.\r\n"),
                flags: Flags::from_imap_list(["\\Seen"]),
                internal_date: date(2019, 3, 1, 0),
            },
            FixtureMessage {
                body: message(11, "", "Nested two.\r\n"),
                flags: Flags::empty(),
                internal_date: date(2019, 3, 2, 0),
            },
        ];
        let unicode = vec![FixtureMessage {
            body: message(20, "", "Entwurf.\r\n"),
            flags: Flags::from_imap_list(["\\Draft"]),
            internal_date: date(2022, 7, 7, 2),
        }];
        Fixture {
            folders: vec![
                FixtureFolder { path: FolderPath::inbox(), messages: inbox },
                FixtureFolder { path: FolderPath::parse("Archive/2019"), messages: nested },
                FixtureFolder { path: FolderPath::parse("Entwürfe & Co"), messages: unicode },
                FixtureFolder { path: FolderPath::parse("Empty"), messages: Vec::new() },
            ],
        }
    }

    /// Only the standard inbox (for single-folder stores such as POP3 or one mbox file).
    pub fn inbox_only() -> Fixture {
        let mut fixture = Fixture::standard();
        fixture.folders.truncate(1);
        fixture
    }

    /// Adds a message with NUL bytes and a bare CR to the inbox (for sinks declaring `binary`).
    pub fn with_binary(mut self) -> Fixture {
        if let Some(inbox) = self.folders.first_mut() {
            inbox.messages.push(FixtureMessage {
                body: message(30, "", "nul \0 byte and bare \r carriage return\r\n"),
                flags: Flags::empty(),
                internal_date: date(2015, 5, 5, 0),
            });
        }
        self
    }

    /// Writes the fixture into a sink (creates folders, appends in order, flushes).
    pub async fn populate(&self, sink: &dyn MailSink) -> Result<(), Error> {
        for folder in &self.folders {
            sink.create_folder(&folder.path).await?;
            for (index, fixture) in folder.messages.iter().enumerate() {
                let meta = MessageMeta::new(format!("fixture-{index}"), fixture.body.len() as u64)
                    .with_flags(fixture.flags.clone())
                    .with_internal_date(fixture.internal_date);
                sink.append(&folder.path, &Message::new(meta, MessageBody::from_bytes(fixture.body.clone())))
                    .await?;
            }
            sink.flush(&folder.path).await?;
        }
        Ok(())
    }

    /// The fixture adapted to what a sink can store: binary content only where declared.
    pub fn for_sink(sink: &dyn MailSink) -> Fixture {
        let capabilities = sink.capabilities();
        let fixture = if capabilities.folders { Fixture::standard() } else { Fixture::inbox_only() };
        if capabilities.binary {
            fixture.with_binary()
        } else {
            fixture
        }
    }
}
