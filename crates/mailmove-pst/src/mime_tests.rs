//! Tests of the rebuild: items built by hand, the output read back by mail-parser.

use chrono::{TimeZone, Utc};
use mail_parser::{MessageParser, MimeHeaders};

use super::*;
use crate::item::Recipient;

fn mailbox(name: &str, email: &str) -> Mailbox {
    Mailbox { name: Some(name.into()), email: Some(email.into()) }
}

fn sample() -> Item {
    Item {
        class: "IPM.Note".into(),
        subject: Some("Grüße aus Köln".into()),
        from: mailbox("Ana Ruiz", "ana@example.org"),
        recipients: vec![
            Recipient { kind: RecipientKind::To, mailbox: mailbox("Bo", "bo@example.org") },
            Recipient { kind: RecipientKind::To, mailbox: mailbox("Cy", "cy@example.org") },
            Recipient { kind: RecipientKind::Cc, mailbox: mailbox("Di", "di@example.org") },
            Recipient { kind: RecipientKind::Bcc, mailbox: Mailbox { name: Some("Ed".into()), email: None } },
        ],
        message_id: Some("<abc@example.org>".into()),
        in_reply_to: Some("<parent@example.org>".into()),
        references: Some("<root@example.org> <parent@example.org>".into()),
        date: Some(Utc.with_ymd_and_hms(2019, 3, 4, 5, 6, 7).unwrap()),
        body_text: Some("Hello\r\nWorld".into()),
        body_html: Some("<p>Hello <b>World</b></p>".into()),
        ..Item::default()
    }
}

fn no_attachments(_: &AttachmentRef) -> Result<LoadedAttachment, String> {
    Err("none expected".into())
}

fn rebuild(item: &Item, load: &mut LoadAttachment<'_>) -> (Vec<u8>, Vec<String>) {
    let mut out = Vec::new();
    let mut damage = Vec::new();
    write_message(item, "key-1", load, &mut out, &mut damage).unwrap();
    (out, damage)
}

#[test]
fn headers_and_alternative_bodies_from_properties() {
    let (bytes, damage) = rebuild(&sample(), &mut no_attachments);
    assert!(damage.is_empty());
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(!text.replace("\r\n", "").contains('\n'), "CRLF only:\n{text}");
    let message = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(message.subject(), Some("Grüße aus Köln"));
    assert_eq!(message.from().unwrap().first().unwrap().address(), Some("ana@example.org"));
    let to: Vec<_> = message.to().unwrap().iter().filter_map(|a| a.address()).collect();
    assert_eq!(to, ["bo@example.org", "cy@example.org"]);
    assert_eq!(message.cc().unwrap().first().unwrap().address(), Some("di@example.org"));
    assert_eq!(message.message_id(), Some("abc@example.org"));
    assert_eq!(message.in_reply_to().as_text(), Some("parent@example.org"));
    assert_eq!(
        message.date().unwrap().to_timestamp(),
        Utc.with_ymd_and_hms(2019, 3, 4, 5, 6, 7).unwrap().timestamp()
    );
    assert_eq!(message.body_text(0).unwrap(), "Hello\r\nWorld");
    assert_eq!(message.body_html(0).unwrap(), "<p>Hello <b>World</b></p>");
    assert!(text.contains("multipart/alternative"), "{text}");
    assert!(text.contains("Bcc: Ed\r\n"), "a name-only recipient keeps its name:\n{text}");
}

#[test]
fn the_same_item_gives_the_same_bytes() {
    let mut item = sample();
    item.attachments = vec![AttachmentRef { id: 7, name: Some("a.bin".into()) }];
    let mut load = |_: &AttachmentRef| {
        Ok(LoadedAttachment {
            name: Some("a.bin".into()),
            mime_type: None,
            content_id: None,
            inline: false,
            content: AttachmentContent::Bytes(vec![1, 2, 3]),
        })
    };
    let first = rebuild(&item, &mut load).0;
    let second = rebuild(&item, &mut load).0;
    assert_eq!(first, second);
    let text = String::from_utf8(first).unwrap();
    assert!(!text.contains("Message-ID: <") || text.contains("Message-ID: <abc@example.org>"));
}

#[test]
fn no_header_is_invented() {
    let item = Item { body_text: Some("x".into()), ..Item::default() };
    let (bytes, _) = rebuild(&item, &mut no_attachments);
    let text = String::from_utf8(bytes).unwrap();
    for absent in ["Message-ID", "Date:", "From:", "Subject:"] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    assert!(text.starts_with("MIME-Version: 1.0\r\nContent-Type: text/plain"), "{text}");
}

#[test]
fn transport_headers_are_kept_without_their_mime_fields() {
    let mut item = sample();
    item.transport_headers = Some(
        "Received: from a by b;\n\tMon, 4 Mar 2019 05:06:07 +0000\nFrom: Real Sender <real@example.net>\n\
         Subject: =?utf-8?q?original?=\nMIME-Version: 1.0\nContent-Type: multipart/mixed;\n boundary=\"old\"\n\
         Content-Transfer-Encoding: 7bit\nX-Custom: kept\n\n"
            .into(),
    );
    let (bytes, _) = rebuild(&item, &mut no_attachments);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("Received: from a by b;\r\n\tMon, 4 Mar 2019 05:06:07 +0000\r\n"), "{text}");
    assert!(text.contains("X-Custom: kept\r\n"));
    assert!(!text.contains("boundary=\"old\""), "{text}");
    assert_eq!(text.matches("MIME-Version").count(), 1);
    let header = text.split("\r\n\r\n").next().unwrap();
    assert!(
        !header.contains("Content-Transfer-Encoding"),
        "the original's encoding field is dropped:\n{header}"
    );
    assert_eq!(header.matches("Content-Type:").count(), 1, "only the rebuilt body's type:\n{header}");
    assert!(header.contains("Content-Type: multipart/alternative"), "{header}");
    let message = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(message.from().unwrap().first().unwrap().address(), Some("real@example.net"));
    assert_eq!(message.subject(), Some("original"));
    assert_eq!(message.body_html(0).unwrap(), "<p>Hello <b>World</b></p>");
}

#[test]
fn attachments_inline_images_and_embedded_messages() {
    let mut item = sample();
    item.body_html = Some("<img src=\"cid:logo@x\">".into());
    item.attachments = vec![
        AttachmentRef { id: 1, name: Some("logo.png".into()) },
        AttachmentRef { id: 2, name: Some("Résumé 2019.pdf".into()) },
        AttachmentRef { id: 3, name: Some("broken.doc".into()) },
        AttachmentRef { id: 4, name: Some("Fwd: hi".into()) },
    ];
    let embedded = Item {
        subject: Some("inner".into()),
        body_text: Some("inner text".into()),
        attachments: vec![AttachmentRef { id: 9, name: Some("deep.txt".into()) }],
        ..Item::default()
    };
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut embedded = Some(embedded);
    let big_copy = big.clone();
    let mut load = move |attachment: &AttachmentRef| -> Result<LoadedAttachment, String> {
        let loaded = |name: &str, content| LoadedAttachment {
            name: Some(name.into()),
            mime_type: None,
            content_id: None,
            inline: false,
            content,
        };
        match attachment.id {
            1 => Ok(LoadedAttachment {
                mime_type: Some("image/png".into()),
                content_id: Some("logo@x".into()),
                inline: true,
                ..loaded("logo.png", AttachmentContent::Bytes(vec![0x89, b'P', b'N', b'G']))
            }),
            2 => Ok(loaded("Résumé 2019.pdf", AttachmentContent::Bytes(big_copy.clone()))),
            3 => Err("block 0x42 is missing".into()),
            _ => Ok(loaded("Fwd: hi", AttachmentContent::Message(Box::new(embedded.take().unwrap())))),
        }
    };
    let (bytes, damage) = rebuild(&item, &mut load);
    assert_eq!(damage.len(), 2, "{damage:?}");
    assert!(damage[0].contains("3 (\"broken.doc\")") && damage[0].contains("block 0x42"), "{damage:?}");
    assert!(damage[1].contains("deep.txt") && damage[1].contains("Fwd: hi"), "{damage:?}");
    let message = MessageParser::default().parse(&bytes).unwrap();
    let attachments: Vec<_> = message.attachments().collect();
    assert_eq!(attachments.len(), 3);
    assert_eq!(attachments[0].content_id(), Some("logo@x"));
    assert_eq!(attachments[0].contents(), &[0x89, b'P', b'N', b'G']);
    assert_eq!(attachments[1].attachment_name(), Some("Résumé 2019.pdf"));
    assert_eq!(attachments[1].content_type().unwrap().subtype(), Some("pdf"));
    assert_eq!(attachments[1].contents(), big.as_slice());
    let inner = attachments[2].message().expect("message/rfc822");
    assert_eq!(inner.subject(), Some("inner"));
    assert_eq!(inner.body_text(0).unwrap(), "inner text");
}

#[test]
fn rtf_bodies() {
    let html_rtf = "{\\rtf1\\ansi\\ansicpg1252\\fromhtml1 {\\*\\htmltag <p>}Hi{\\*\\htmltag </p>}}";
    let item = Item {
        body_text: Some("Hi".into()),
        body_rtf: Some(compressed_rtf::compress_rtf(html_rtf).unwrap()),
        ..Item::default()
    };
    let (bytes, damage) = rebuild(&item, &mut no_attachments);
    assert!(damage.is_empty(), "{damage:?}");
    let message = MessageParser::default().parse(&bytes).unwrap();
    assert!(message.body_html(0).unwrap().contains("<p>Hi</p>"), "{:?}", message.body_html(0));

    let real_rtf = "{\\rtf1\\ansi Hello {\\b bold}}";
    let item = Item { body_rtf: Some(compressed_rtf::compress_rtf(real_rtf).unwrap()), ..Item::default() };
    let (bytes, _) = rebuild(&item, &mut no_attachments);
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("Content-Type: text/rtf"), "{text}");

    let item = Item { body_rtf: Some(vec![1, 2, 3]), body_text: Some("kept".into()), ..Item::default() };
    let (bytes, damage) = rebuild(&item, &mut no_attachments);
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert!(String::from_utf8(bytes).unwrap().contains("kept"));
}

#[test]
fn types_guessed_from_names() {
    assert_eq!(guess_type(Some("A.JPG")), "image/jpeg");
    assert_eq!(
        guess_type(Some("report.docx")),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    assert_eq!(guess_type(Some("noext")), "application/octet-stream");
    assert_eq!(guess_type(None), "application/octet-stream");
}
