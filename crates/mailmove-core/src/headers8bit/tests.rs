use mail_parser::{MessageParser, MimeHeaders};

use super::*;

fn run(message: &[u8]) -> Option<Vec<u8>> {
    let body = MessageBody::from_bytes(message.to_vec());
    encode(&body, &SpoolConfig::default()).unwrap().map(|out| out.to_bytes().unwrap().to_vec())
}

fn header_of(message: &[u8]) -> &[u8] {
    &message[..header_len(message, message.len() as u64).unwrap()]
}

#[test]
fn no_8bit_header_is_left_alone() {
    assert_eq!(run(b"Subject: plain\r\nFrom: a@b.example\r\n\r\nbody \xC3\xA9\r\n"), None);
    assert_eq!(run(b""), None);
    assert_eq!(run(b"\r\nSubject: \xC3\xA9\r\n"), None, "that line is body, not header");
    assert_eq!(run(b"Message-ID: <\xC3\xA9@x.example>\r\n\r\n"), None, "left raw");
}

#[test]
fn utf8_subject_decodes_back_and_header_is_ascii() {
    let subject = "Re: naïve café — 日本語  two spaces";
    let message = format!("Subject: {subject}\r\nTo: a@b.example\r\n\r\nbody\r\n");
    let out = run(message.as_bytes()).unwrap();
    assert!(!has_8bit(header_of(&out)));
    assert!(out.ends_with(b"\r\nTo: a@b.example\r\n\r\nbody\r\n"));
    let parsed = MessageParser::default().parse(&out[..]).unwrap();
    assert_eq!(parsed.subject(), Some(subject));
    assert_eq!(run(&out), None, "idempotent");
}

#[test]
fn folded_subject_is_unfolded() {
    let out = run(b"Subject: caf\xC3\xA9\r\n  au lait\r\n\r\n").unwrap();
    let parsed = MessageParser::default().parse(&out[..]).unwrap();
    assert_eq!(parsed.subject(), Some("café  au lait"));
}

#[test]
fn long_subject_is_folded_without_splitting_characters() {
    let subject = "é".repeat(300);
    let out = run(format!("Subject: {subject}\r\n\r\nx").as_bytes()).unwrap();
    for line in header_of(&out).split(|&byte| byte == b'\n') {
        assert!(line.len() <= 78, "{}", String::from_utf8_lossy(line));
    }
    for word in String::from_utf8(header_of(&out).to_vec()).unwrap().split_whitespace().skip(1) {
        assert!(word.len() <= 75);
        let text = word.strip_prefix("=?UTF-8?B?").unwrap().strip_suffix("?=").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
        assert!(String::from_utf8(bytes).is_ok(), "a word splits a character");
    }
    assert_eq!(MessageParser::default().parse(&out[..]).unwrap().subject(), Some(subject.as_str()));
}

#[test]
fn addresses_stay_and_display_names_are_encoded() {
    let out = run("From: \"Jörg Müller\" <joerg@example.org>, plain@example.org\r\n\r\n".as_bytes()).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains(" <joerg@example.org>,") && text.contains(" plain@example.org\r\n"));
    let parsed = MessageParser::default().parse(&out[..]).unwrap();
    let from: Vec<_> = parsed.from().unwrap().iter().collect();
    assert_eq!(from[0].name(), Some("Jörg Müller"));
    assert_eq!(from[0].address(), Some("joerg@example.org"));
    assert_eq!(from[1].address(), Some("plain@example.org"));

    let out = run("To: joerg@example.org (Jörg)\r\n\r\n".as_bytes()).unwrap();
    assert!(out.starts_with(b"To: joerg@example.org (=?UTF-8?B?"));
    // The 8-bit byte is in the address itself (EAI): nothing can be encoded.
    assert_eq!(run("To: Jörg <jörg@example.org>\r\n\r\n".as_bytes()), None);
}

#[test]
fn parameters_become_rfc2231() {
    for name in ["résumé.pdf", &"ü".repeat(80)] {
        let message = format!(
            "Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n \
             filename=\"{name}\"; size=3\r\n\r\nabc"
        );
        let out = run(message.as_bytes()).unwrap();
        assert!(!has_8bit(&out));
        assert!(header_of(&out).split(|&byte| byte == b'\n').all(|line| line.len() <= 78));
        let parsed = MessageParser::default().parse(&out[..]).unwrap();
        let disposition = parsed.root_part().content_disposition().unwrap();
        assert_eq!(disposition.ctype(), "attachment");
        assert_eq!(disposition.attribute("filename"), Some(name));
        assert_eq!(disposition.attribute("size"), Some("3"));
    }
}

#[test]
fn latin1_byte_uses_unknown_8bit() {
    let out = run(b"Subject: caf\xE9\r\n\r\n").unwrap();
    let text = String::from_utf8(out).unwrap();
    let word = text.strip_prefix("Subject: =?unknown-8bit?B?").unwrap();
    let encoded = word.strip_suffix("?=\r\n\r\n").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    assert_eq!(decoded, b"caf\xE9");
}

#[test]
fn line_endings_are_kept() {
    let subject = "é".repeat(100);
    let message = format!("Subject: {subject}\nX-Mixed: a\r\nComments: ü\r\n\nbody\r\n");
    let out = run(message.as_bytes()).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("\r\n "), "folds use the first line's LF");
    assert_eq!(text.matches("\n ").count(), 4);
    assert!(text.contains("?=\nX-Mixed: a\r\nComments: =?UTF-8?B?w7w=?=\r\n\nbody\r\n"));
}

#[test]
fn body_is_untouched() {
    let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let message = [b"Subject: \xC3\xA9\r\n\r\n".as_slice(), &body].concat();
    let out = run(&message).unwrap();
    assert!(out.ends_with(&[b"\r\n\r\n".as_slice(), &body].concat()));
    assert!(!has_8bit(header_of(&out)));
}

#[test]
fn deterministic_and_spooled_same_as_memory() {
    // A body of several read chunks, so the spooled copy goes through more than one.
    let message =
        format!("Subject: naïve\r\nFrom: Zoë <z@example.org>\r\n\r\n{}", "body é\r\n".repeat(30_000));
    let first = run(message.as_bytes()).unwrap();
    assert_eq!(run(message.as_bytes()).unwrap(), first);
    let small = SpoolConfig { threshold: 16, dir: None };
    let mut builder = small.builder();
    builder.push(message.as_bytes()).unwrap();
    let spooled = builder.finish().unwrap();
    assert!(spooled.is_spooled());
    let out = encode(&spooled, &small).unwrap().unwrap();
    assert!(out.is_spooled());
    assert_eq!(out.to_bytes().unwrap().to_vec(), first);
}

#[test]
fn has_8bit_header_looks_at_the_header_only() {
    let check = |bytes: &'static [u8]| has_8bit_header(&MessageBody::from(bytes)).unwrap();
    assert!(check(b"Subject: \xE9\r\n\r\nbody"));
    assert!(check(b"Subject: \xE9"));
    assert!(!check(b"Subject: e\r\n\r\nbody \xE9"));
    assert!(!check(b"Subject: e\n\nbody \xE9"));
}

#[test]
fn oversized_header_section_is_left_alone() {
    let mut message = b"Subject: \xC3\xA9\r\n".to_vec();
    while message.len() <= MAX_HEADER {
        message.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
    }
    message.extend_from_slice(b"\r\nbody");
    assert_eq!(run(&message), None);
    assert!(!has_8bit_header(&MessageBody::from_bytes(message)).unwrap());
}
