//! The MAPI properties this crate reads, and how their values become text, times and bytes.
//!
//! Property ids are MS-OXPROPS's (the low 16 bits of a property tag; the type comes with the
//! value). Strings come in two forms: UTF-16 (`PtypString`, Unicode PSTs) and 8-bit
//! (`PtypString8`, ANSI PSTs and some properties of Unicode ones), which are in the item's code
//! page ([`item_encoding`]), not in Latin-1 as `outlook-pst`'s `Display` would read them.

use chrono::{DateTime, Utc};
use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};
use outlook_pst::ltp::prop_context::PropertyValue;

/// `PidTagMessageClass`: `IPM.Note`, `IPM.Appointment`, ...
pub(crate) const MESSAGE_CLASS: u16 = 0x001A;
/// `PidTagSubject`.
pub(crate) const SUBJECT: u16 = 0x0037;
/// `PidTagClientSubmitTime`: when the sender sent it.
pub(crate) const CLIENT_SUBMIT_TIME: u16 = 0x0039;
/// `PidTagSentRepresentingName` / `...EmailAddress` / `...AddressType`.
pub(crate) const SENT_REPRESENTING_NAME: u16 = 0x0042;
pub(crate) const SENT_REPRESENTING_ADDRESS_TYPE: u16 = 0x0064;
pub(crate) const SENT_REPRESENTING_EMAIL: u16 = 0x0065;
/// `PidTagTransportMessageHeaders`: the header section the message arrived with.
pub(crate) const TRANSPORT_MESSAGE_HEADERS: u16 = 0x007D;
/// `PidTagSenderName` / `...AddressType` / `...EmailAddress`.
pub(crate) const SENDER_NAME: u16 = 0x0C1A;
pub(crate) const SENDER_ADDRESS_TYPE: u16 = 0x0C1E;
pub(crate) const SENDER_EMAIL: u16 = 0x0C1F;
/// `PidTagDisplayTo` / `Cc`: the recipients' names, `;`-separated.
pub(crate) const DISPLAY_CC: u16 = 0x0E03;
pub(crate) const DISPLAY_TO: u16 = 0x0E04;
/// `PidTagMessageDeliveryTime`: when it arrived.
pub(crate) const MESSAGE_DELIVERY_TIME: u16 = 0x0E06;
/// `PidTagMessageFlags`: read, unsent, ...
pub(crate) const MESSAGE_FLAGS: u16 = 0x0E07;
/// `PidTagMessageSize`: Outlook's size of the item (not of any MIME form).
pub(crate) const MESSAGE_SIZE: u16 = 0x0E08;
/// `PidTagBody`, `PidTagRtfCompressed`, `PidTagHtml`.
pub(crate) const BODY: u16 = 0x1000;
pub(crate) const RTF_COMPRESSED: u16 = 0x1009;
pub(crate) const HTML: u16 = 0x1013;
/// `PidTagInternetMessageId`, `PidTagInternetReferences`, `PidTagInReplyToId`.
pub(crate) const INTERNET_MESSAGE_ID: u16 = 0x1035;
pub(crate) const INTERNET_REFERENCES: u16 = 0x1039;
pub(crate) const IN_REPLY_TO_ID: u16 = 0x1042;
/// `PidTagIconIndex`: 0x105 replied, 0x106 forwarded (older Outlooks set only this).
pub(crate) const ICON_INDEX: u16 = 0x1080;
/// `PidTagLastVerbExecuted`: 102 reply, 103 reply all, 104 forward.
pub(crate) const LAST_VERB_EXECUTED: u16 = 0x1081;
/// `PidTagFlagStatus`: 2 = flagged for follow-up.
pub(crate) const FLAG_STATUS: u16 = 0x1090;
/// `PidTagCreationTime`.
pub(crate) const CREATION_TIME: u16 = 0x3007;
/// `PidTagDisplayName` (folders, recipients).
pub(crate) const DISPLAY_NAME: u16 = 0x3001;
/// `PidTagAddressType` / `PidTagEmailAddress` (recipients).
pub(crate) const ADDRESS_TYPE: u16 = 0x3002;
pub(crate) const EMAIL_ADDRESS: u16 = 0x3003;
/// `PidTagContainerClass` (folders): `IPF.Note`, `IPF.Appointment`, ...
pub(crate) const CONTAINER_CLASS: u16 = 0x3613;
/// `PidTagAttachFilename` (8.3) and `PidTagAttachLongFilename`.
pub(crate) const ATTACH_FILENAME: u16 = 0x3704;
pub(crate) const ATTACH_LONG_FILENAME: u16 = 0x3707;
/// `PidTagAttachLongPathname`: where an attachment by reference points.
pub(crate) const ATTACH_LONG_PATHNAME: u16 = 0x370D;
/// `PidTagAttachMimeTag`: the attachment's content type.
pub(crate) const ATTACH_MIME_TAG: u16 = 0x370E;
/// `PidTagAttachContentId`: the `cid:` an HTML body refers to it by.
pub(crate) const ATTACH_CONTENT_ID: u16 = 0x3712;
/// `PidTagAttachFlags`: 4 = rendered in the body (`attRenderedInBody`).
pub(crate) const ATTACH_FLAGS: u16 = 0x3714;
/// `PidTagRecipientType`: 1 To, 2 Cc, 3 Bcc.
pub(crate) const RECIPIENT_TYPE: u16 = 0x0C15;
/// `PidTagSmtpAddress` (recipients) and `PidTagSenderSmtpAddress`,
/// `PidTagSentRepresentingSmtpAddress`: the SMTP form of an Exchange (`EX`) address.
pub(crate) const SMTP_ADDRESS: u16 = 0x39FE;
pub(crate) const SENDER_SMTP_ADDRESS: u16 = 0x5D01;
pub(crate) const SENT_REPRESENTING_SMTP_ADDRESS: u16 = 0x5D02;
/// `PidTagInternetCodepage` (the code page of `PidTagHtml`) and `PidTagMessageCodepage` (of
/// the item's 8-bit strings).
pub(crate) const INTERNET_CODEPAGE: u16 = 0x3FDE;
pub(crate) const MESSAGE_CODEPAGE: u16 = 0x3FFD;
/// `PidTagAttachmentHidden`: not shown as an attachment (an inline image).
pub(crate) const ATTACHMENT_HIDDEN: u16 = 0x7FFE;

/// `MSGFLAG_READ` and `MSGFLAG_UNSENT` in [`MESSAGE_FLAGS`].
pub(crate) const MSGFLAG_READ: i32 = 0x01;
pub(crate) const MSGFLAG_UNSENT: i32 = 0x08;

/// The properties a listing needs (opening an item with only these is cheap: no bodies).
pub(crate) const LISTING: &[u16] = &[
    MESSAGE_CLASS,
    MESSAGE_FLAGS,
    MESSAGE_SIZE,
    MESSAGE_DELIVERY_TIME,
    CLIENT_SUBMIT_TIME,
    CREATION_TIME,
    FLAG_STATUS,
    LAST_VERB_EXECUTED,
    ICON_INDEX,
    INTERNET_MESSAGE_ID,
];

/// The encoding of an item's 8-bit strings: its `PidTagMessageCodepage`, else
/// `PidTagInternetCodepage`, else Windows-1252 (what Western Outlooks wrote).
pub(crate) fn item_encoding(get: &dyn Fn(u16) -> Option<PropertyValue>) -> &'static Encoding {
    [MESSAGE_CODEPAGE, INTERNET_CODEPAGE]
        .into_iter()
        .filter_map(|id| integer(get(id).as_ref()))
        .filter_map(|page| u16::try_from(page).ok())
        .find_map(codepage::to_encoding)
        .unwrap_or(WINDOWS_1252)
}

/// A string property as text. `PtypString8` is decoded with `encoding`; the terminating NUL
/// some writers leave is dropped.
pub(crate) fn text(value: Option<&PropertyValue>, encoding: &'static Encoding) -> Option<String> {
    let text = match value? {
        PropertyValue::Unicode(value) => String::from_utf16_lossy(value.buffer()),
        PropertyValue::String8(value) => encoding.decode_without_bom_handling(value.buffer()).0.into_owned(),
        // Some writers store a string as bytes (PidTagHtml always is).
        PropertyValue::Binary(value) => decode_bytes(value.buffer(), encoding),
        _ => return None,
    };
    let text = text.trim_end_matches('\0');
    (!text.is_empty()).then(|| text.to_string())
}

/// Bytes that should be text: UTF-8 when they are valid UTF-8 (HTML bodies often are, whatever
/// the code page says), else `encoding`.
pub(crate) fn decode_bytes(bytes: &[u8], encoding: &'static Encoding) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) if encoding == UTF_8 => String::from_utf8_lossy(bytes).into_owned(),
        Err(_) => encoding.decode_without_bom_handling(bytes).0.into_owned(),
    }
}

/// An integer property (16, 32 or 64 bits; a boolean is 0 or 1).
pub(crate) fn integer(value: Option<&PropertyValue>) -> Option<i64> {
    match value? {
        PropertyValue::Integer16(value) => Some(i64::from(*value)),
        PropertyValue::Integer32(value) => Some(i64::from(*value)),
        PropertyValue::Integer64(value) => Some(*value),
        PropertyValue::Boolean(value) => Some(i64::from(*value)),
        _ => None,
    }
}

/// A binary property's bytes.
pub(crate) fn binary(value: Option<&PropertyValue>) -> Option<&[u8]> {
    match value? {
        PropertyValue::Binary(value) => Some(value.buffer()),
        _ => None,
    }
}

/// A `PtypTime` (100 ns intervals since 1601-01-01 UTC) as a UTC time; `None` for the zero
/// and out-of-range values damaged or unset items carry.
pub(crate) fn time(value: Option<&PropertyValue>) -> Option<DateTime<Utc>> {
    let PropertyValue::Time(filetime) = value? else { return None };
    filetime_to_utc(*filetime)
}

/// Seconds between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_OFFSET_SECS: i64 = 11_644_473_600;

/// See [`time`].
pub(crate) fn filetime_to_utc(filetime: i64) -> Option<DateTime<Utc>> {
    if filetime <= 0 {
        return None;
    }
    let secs = filetime / 10_000_000 - FILETIME_UNIX_OFFSET_SECS;
    let nanos = u32::try_from((filetime % 10_000_000) * 100).ok()?;
    // Before 1971 or after 9999 is a damaged value, not a real date of a message.
    (86_400 * 365..253_402_300_800).contains(&secs).then(|| DateTime::from_timestamp(secs, nanos)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetimes() {
        // 2007-04-29 22:27:33.593 UTC, as outlook.pst's delivery time (pffexport prints it).
        let utc = filetime_to_utc(128_223_592_535_930_000).unwrap();
        assert_eq!(utc.to_rfc3339(), "2007-04-29T22:27:33.593+00:00");
        assert_eq!(filetime_to_utc(0), None);
        assert_eq!(filetime_to_utc(-5), None);
        assert_eq!(filetime_to_utc(i64::MAX), None);
    }

    #[test]
    fn bytes_prefer_utf8_then_the_code_page() {
        assert_eq!(decode_bytes("é".as_bytes(), WINDOWS_1252), "é");
        assert_eq!(decode_bytes(&[0x80], WINDOWS_1252), "€");
        assert_eq!(decode_bytes(&[0xff], UTF_8), "\u{fffd}");
    }

    #[test]
    fn code_pages_map_to_encodings() {
        let get = |id: u16| (id == MESSAGE_CODEPAGE).then_some(PropertyValue::Integer32(1251));
        assert_eq!(item_encoding(&get).name(), "windows-1251");
        let none = |_: u16| None;
        assert_eq!(item_encoding(&none), WINDOWS_1252);
        let bogus = |id: u16| (id == MESSAGE_CODEPAGE).then_some(PropertyValue::Integer32(-7));
        assert_eq!(item_encoding(&bogus), WINDOWS_1252);
    }
}
