//! An Outlook item as plain values: what [`crate::mime`] rebuilds a message from.
//!
//! [`Item::from_properties`] reads it from a property getter, so that the rebuild knows nothing
//! of `outlook-pst` and its tests build items by hand. The item classes that are mail, the
//! flags and the internal date are decided here, once.

use chrono::{DateTime, Utc};
use encoding_rs::Encoding;
use mailmove_core::Flags;
use outlook_pst::ltp::prop_context::PropertyValue;

use crate::props::{self, binary, integer, text, time};

/// A getter of an item's properties by id.
pub(crate) type Getter<'a> = &'a dyn Fn(u16) -> Option<PropertyValue>;

/// Who a recipient is to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecipientKind {
    To,
    Cc,
    Bcc,
}

/// A name and an address, either of which may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mailbox {
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Mailbox {
    /// The SMTP address when there is one: `smtp` when the address type is Exchange's `EX`
    /// (whose address is an X.500 name no mail client can use).
    pub(crate) fn new(
        name: Option<String>,
        address_type: Option<String>,
        email: Option<String>,
        smtp: Option<String>,
    ) -> Self {
        let exchange = address_type.is_some_and(|kind| kind.eq_ignore_ascii_case("EX"));
        let email = match (exchange, smtp) {
            (_, Some(smtp)) if smtp.contains('@') => Some(smtp),
            (true, _) => None,
            (false, _) => email,
        };
        Mailbox { name, email: email.filter(|email| email.contains('@')) }
    }

    /// Whether there is nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none()
    }
}

/// One recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recipient {
    pub kind: RecipientKind,
    pub mailbox: Mailbox,
}

/// One attachment of an item, as its attachment table lists it (the data is read when written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttachmentRef {
    /// The attachment's sub-node id (the table's row id).
    pub id: u32,
    /// Its file name as the table has it, for messages about an attachment that cannot be read.
    pub name: Option<String>,
}

/// An attachment read: what it holds and how it is presented.
pub(crate) struct LoadedAttachment {
    pub name: Option<String>,
    pub mime_type: Option<String>,
    pub content_id: Option<String>,
    /// Shown in the body (an inline image), not as an attachment.
    pub inline: bool,
    pub content: AttachmentContent,
}

/// The data of an attachment.
pub(crate) enum AttachmentContent {
    /// A file (`afByValue`) or OLE storage (`afStorage`): the bytes.
    Bytes(Vec<u8>),
    /// An embedded message (`afEmbeddedMessage`), rebuilt as `message/rfc822`; its own
    /// attachments cannot be read (see the crate documentation) and are named as damage.
    Message(Box<Item>),
    /// A link (`afByReference...`, `afByWebReference`): the path or URL, written as a text part.
    Reference(String),
}

/// Everything the rebuild needs of one item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Item {
    pub class: String,
    pub subject: Option<String>,
    /// The header section the message arrived with (`PidTagTransportMessageHeaders`).
    pub transport_headers: Option<String>,
    pub from: Mailbox,
    pub recipients: Vec<Recipient>,
    /// `PidTagDisplayTo`/`Cc`/`Bcc`: names only, for items without a recipient table.
    pub display_to: Option<String>,
    pub display_cc: Option<String>,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    /// When it was sent (else delivered, else created): the `Date:` header.
    pub date: Option<DateTime<Utc>>,
    /// When it arrived: the internal date.
    pub delivered: Option<DateTime<Utc>>,
    pub body_text: Option<String>,
    pub body_html: Option<String>,
    /// `PidTagRtfCompressed`, still compressed.
    pub body_rtf: Option<Vec<u8>>,
    pub attachments: Vec<AttachmentRef>,
}

impl Item {
    /// Reads an item's own properties (recipients and attachments come from its tables).
    pub(crate) fn from_properties(get: Getter<'_>) -> Item {
        let encoding = props::item_encoding(get);
        let string = |id: u16| text(get(id).as_ref(), encoding);
        let from = Mailbox::new(
            string(props::SENT_REPRESENTING_NAME).or_else(|| string(props::SENDER_NAME)),
            string(props::SENT_REPRESENTING_ADDRESS_TYPE).or_else(|| string(props::SENDER_ADDRESS_TYPE)),
            string(props::SENT_REPRESENTING_EMAIL).or_else(|| string(props::SENDER_EMAIL)),
            string(props::SENT_REPRESENTING_SMTP_ADDRESS).or_else(|| string(props::SENDER_SMTP_ADDRESS)),
        );
        let delivered = time(get(props::MESSAGE_DELIVERY_TIME).as_ref());
        let submitted = time(get(props::CLIENT_SUBMIT_TIME).as_ref());
        let created = time(get(props::CREATION_TIME).as_ref());
        Item {
            class: class_of(get, encoding),
            subject: string(props::SUBJECT).map(|subject| strip_subject_prefix_marker(&subject)),
            transport_headers: string(props::TRANSPORT_MESSAGE_HEADERS),
            from,
            recipients: Vec::new(),
            display_to: string(props::DISPLAY_TO),
            display_cc: string(props::DISPLAY_CC),
            message_id: string(props::INTERNET_MESSAGE_ID),
            in_reply_to: string(props::IN_REPLY_TO_ID),
            references: string(props::INTERNET_REFERENCES),
            date: submitted.or(delivered).or(created),
            delivered: delivered.or(submitted).or(created),
            body_text: string(props::BODY),
            body_html: get(props::HTML).as_ref().and_then(|html| html_text(html, get)),
            body_rtf: binary(get(props::RTF_COMPRESSED).as_ref()).map(<[u8]>::to_vec),
            attachments: Vec::new(),
        }
    }
}

/// `PidTagHtml` is bytes in the item's Internet code page.
fn html_text(html: &PropertyValue, get: Getter<'_>) -> Option<String> {
    let encoding = integer(get(props::INTERNET_CODEPAGE).as_ref())
        .and_then(|page| u16::try_from(page).ok())
        .and_then(codepage::to_encoding)
        .unwrap_or_else(|| props::item_encoding(get));
    text(Some(html), encoding)
}

/// Some writers keep the 2-character "normalized subject" marker (`\u{1}` + length) in front of
/// the subject; it is not part of the text.
fn strip_subject_prefix_marker(subject: &str) -> String {
    let mut chars = subject.chars();
    match chars.next() {
        Some('\u{1}') => chars.skip(1).collect(),
        _ => subject.to_string(),
    }
}

/// The item's class, `IPM.Note` when it has none (the default of a mail item).
fn class_of(get: Getter<'_>, encoding: &'static Encoding) -> String {
    text(get(props::MESSAGE_CLASS).as_ref(), encoding).unwrap_or_else(|| "IPM.Note".to_string())
}

/// What kind of item a message class names, for the mail/not-mail decision and the counts of
/// what was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ItemKind {
    /// A mail message (notes, posts, meeting requests and responses, reports, recalls).
    Mail,
    Appointment,
    Contact,
    Task,
    Note,
    Journal,
    Other,
}

impl ItemKind {
    /// The kind of a message class (case-insensitive, by prefix: `IPM.Note.SMIME` is mail).
    pub(crate) fn of_class(class: &str) -> ItemKind {
        let class = class.to_ascii_lowercase();
        let is = |prefix: &str| class == prefix || class.starts_with(&format!("{prefix}."));
        if class.is_empty()
            || class == "ipm"
            || is("ipm.note")
            || is("ipm.post")
            || is("ipm.schedule.meeting")
            || is("ipm.outlook.recall")
            || class.starts_with("report.")
        {
            ItemKind::Mail
        } else if is("ipm.appointment") {
            ItemKind::Appointment
        } else if is("ipm.contact") || is("ipm.distlist") {
            ItemKind::Contact
        } else if is("ipm.task") || is("ipm.taskrequest") {
            ItemKind::Task
        } else if is("ipm.stickynote") {
            ItemKind::Note
        } else if is("ipm.activity") {
            ItemKind::Journal
        } else {
            ItemKind::Other
        }
    }

    /// How a report names items of this kind.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            ItemKind::Mail => "mail items",
            ItemKind::Appointment => "calendar items",
            ItemKind::Contact => "contacts",
            ItemKind::Task => "tasks",
            ItemKind::Note => "notes",
            ItemKind::Journal => "journal entries",
            ItemKind::Other => "other items",
        }
    }
}

/// The IMAP flags of an item: read → `\Seen`, unsent → `\Draft`, flagged for follow-up →
/// `\Flagged`, replied → `\Answered`, forwarded → `$Forwarded`.
pub(crate) fn flags_of(get: Getter<'_>) -> Flags {
    let message_flags = integer(get(props::MESSAGE_FLAGS).as_ref()).unwrap_or(0);
    let verb = integer(get(props::LAST_VERB_EXECUTED).as_ref());
    let icon = integer(get(props::ICON_INDEX).as_ref());
    let mut flags = Flags::empty();
    flags.seen = message_flags & i64::from(props::MSGFLAG_READ) != 0;
    flags.draft = message_flags & i64::from(props::MSGFLAG_UNSENT) != 0;
    flags.flagged = integer(get(props::FLAG_STATUS).as_ref()) == Some(2);
    // Outlook 2003 and later write the verb; older ones only the icon.
    flags.answered = matches!(verb, Some(102 | 103)) || icon == Some(0x105);
    if verb == Some(104) || icon == Some(0x106) {
        flags.keywords.insert("$Forwarded".to_string());
    }
    flags
}

/// The internal date of an item: delivery, else submit, else creation time.
pub(crate) fn internal_date(get: Getter<'_>) -> Option<DateTime<Utc>> {
    [props::MESSAGE_DELIVERY_TIME, props::CLIENT_SUBMIT_TIME, props::CREATION_TIME]
        .into_iter()
        .find_map(|id| time(get(id).as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        for mail in [
            "IPM.Note",
            "ipm.note.SMIME.MultipartSigned",
            "IPM.Schedule.Meeting.Request",
            "REPORT.IPM.Note.NDR",
            "IPM.Post",
            "",
        ] {
            assert_eq!(ItemKind::of_class(mail), ItemKind::Mail, "{mail}");
        }
        assert_eq!(ItemKind::of_class("IPM.Appointment"), ItemKind::Appointment);
        assert_eq!(ItemKind::of_class("IPM.DistList"), ItemKind::Contact);
        assert_eq!(ItemKind::of_class("IPM.Contact"), ItemKind::Contact);
        assert_eq!(ItemKind::of_class("IPM.Task"), ItemKind::Task);
        assert_eq!(ItemKind::of_class("IPM.StickyNote"), ItemKind::Note);
        assert_eq!(ItemKind::of_class("IPM.Activity"), ItemKind::Journal);
        assert_eq!(ItemKind::of_class("IPM.Notebook"), ItemKind::Other, "a prefix is not a class");
    }

    #[test]
    fn flags_from_properties() {
        let get = |id: u16| match id {
            props::MESSAGE_FLAGS => Some(PropertyValue::Integer32(props::MSGFLAG_READ | 0x10)),
            props::FLAG_STATUS => Some(PropertyValue::Integer32(2)),
            props::LAST_VERB_EXECUTED => Some(PropertyValue::Integer32(104)),
            _ => None,
        };
        let flags = flags_of(&get);
        assert!(flags.seen && flags.flagged && !flags.answered && !flags.draft);
        assert_eq!(flags.to_imap_list(), ["\\Seen", "\\Flagged", "$Forwarded"]);
        let replied_draft = |id: u16| match id {
            props::MESSAGE_FLAGS => Some(PropertyValue::Integer32(props::MSGFLAG_UNSENT)),
            props::ICON_INDEX => Some(PropertyValue::Integer32(0x105)),
            _ => None,
        };
        let flags = flags_of(&replied_draft);
        assert!(flags.answered && flags.draft && !flags.seen);
    }

    #[test]
    fn exchange_addresses_use_the_smtp_form() {
        let dn = Some("/O=EXAMPLE/OU=FIRST/CN=RECIPIENTS/CN=ANA".to_string());
        let smtp = Some("ana@example.org".to_string());
        let mailbox = Mailbox::new(Some("Ana".into()), Some("EX".into()), dn.clone(), smtp);
        assert_eq!(mailbox.email.as_deref(), Some("ana@example.org"));
        let without_smtp = Mailbox::new(Some("Ana".into()), Some("EX".into()), dn, None);
        assert_eq!(without_smtp.email, None, "an X.500 name is not an address");
        assert_eq!(without_smtp.name.as_deref(), Some("Ana"));
    }

    #[test]
    fn subject_marker() {
        assert_eq!(strip_subject_prefix_marker("\u{1}\u{4}RE: hi"), "RE: hi");
        assert_eq!(strip_subject_prefix_marker("hi"), "hi");
    }
}
