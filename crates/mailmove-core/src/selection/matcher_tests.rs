//! The matcher's rules, one encoding at a time.

use super::*;
use crate::message::SpoolConfig;

fn criteria() -> SearchCriteria {
    SearchCriteria::default()
}

fn matcher(criteria: SearchCriteria) -> Matcher {
    criteria.compile().expect("valid criteria")
}

fn by_id(id: &str) -> Matcher {
    matcher(SearchCriteria { message_id: vec![id.into()], ..criteria() })
}

fn by_from(from: &str) -> Matcher {
    matcher(SearchCriteria { from: vec![from.into()], ..criteria() })
}

fn by_subject(subject: &str) -> Matcher {
    matcher(SearchCriteria { subject: vec![subject.into()], ..criteria() })
}

fn by_text(text: &str) -> Matcher {
    matcher(SearchCriteria { text: vec![text.into()], ..criteria() })
}

const ENCODED: &[u8] = b"From: =?UTF-8?Q?Jos=C3=A9_P=C3=A9rez?= <jose.perez@example.org>\r\n\
Subject: =?UTF-8?B?UsOpdW5pb24gYnVkZ8OpdGFpcmU=?= =?ISO-8859-1?Q?_=E9t=E9?=\r\n\
Message-ID: <r1@example.org>\r\n\
\r\n\
body\r\n";

#[test]
fn encoded_from_and_subject_are_decoded_and_case_folded() {
    assert!(by_from("JOSÉ PÉREZ").matches_bytes(ENCODED), "display name, RFC 2047 Q, any case");
    assert!(by_from("perez@EXAMPLE").matches_bytes(ENCODED), "address");
    assert!(by_from("pérez <jose.perez@").matches_bytes(ENCODED), "Name <address>");
    assert!(!by_from("=?UTF-8?").matches_bytes(ENCODED), "the encoded form is not the text");
    assert!(!by_from("ana").matches_bytes(ENCODED));
    assert!(by_subject("réunion BUDGÉTAIRE été").matches_bytes(ENCODED), "B and Latin-1 Q words joined");
    assert!(!by_subject("UsOp").matches_bytes(ENCODED));
    assert!(!by_subject("jose").matches_bytes(ENCODED), "only the Subject is searched");
}

#[test]
fn message_ids_are_exact_with_or_without_brackets() {
    for wanted in ["r1@example.org", "<r1@example.org>", "  <r1@example.org> "] {
        assert!(by_id(wanted).matches_bytes(ENCODED), "{wanted}");
    }
    for other in ["1@example.org", "r1@example.or", "R1@example.org", "xr1@example.org"] {
        assert!(!by_id(other).matches_bytes(ENCODED), "{other} is not the message's ID");
    }
    let folded = b"Message-ID:\r\n <folded@example.org>\r\n\r\nx\r\n";
    assert!(by_id("folded@example.org").matches_bytes(folded));
    let bare = b"Message-ID: bare@example.org\r\n\r\nx\r\n";
    assert!(by_id("<bare@example.org>").matches_bytes(bare));
    let none = b"Subject: no id\r\n\r\nx\r\n";
    assert!(!by_id("r1@example.org").matches_bytes(none));
    // Several IDs name several messages: any of them.
    let either = matcher(SearchCriteria {
        message_id: vec!["other@example.org".into(), "r1@example.org".into()],
        ..criteria()
    });
    assert!(either.matches_bytes(ENCODED));
    // The first field counts, as an mbox listing reads it.
    let twice = b"Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\nx\r\n";
    assert!(by_id("first@x").matches_bytes(twice));
    assert!(!by_id("second@x").matches_bytes(twice));
}

#[test]
fn quoted_printable_text_is_decoded() {
    let raw = "Subject: menu\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Un caf=C3=A9 cr=C3=A8me, tr=C3=A8s imp=\r\nortant.\r\n";
    assert!(by_text("CAFÉ CRÈME").matches_bytes(raw.as_bytes()));
    assert!(by_text("très important").matches_bytes(raw.as_bytes()), "soft line break undone");
    assert!(!by_text("caf=C3").matches_bytes(raw.as_bytes()));
}

#[test]
fn base64_parts_of_a_multipart_are_decoded() {
    // "Grüße aus Köln\r\n" in ISO-8859-1, base64.
    let raw = b"Subject: greetings\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
R3L832UgYXVzIEv2bG4NCg==\r\n\
--b1\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
c2VjcmV0IGluIGFuIGF0dGFjaG1lbnQ=\r\n\
--b1--\r\n";
    assert!(by_text("grüße AUS köln").matches_bytes(raw));
    assert!(!by_text("R3L832").matches_bytes(raw), "the encoded form is not the text");
    assert!(!by_text("secret in an attachment").matches_bytes(raw), "binary parts are not text");
}

#[test]
fn html_is_searched_as_text() {
    let raw = b"Subject: news\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><body><p>Quarterly <b>results</b> &amp; outlook</p>\r\n\
<a href=\"https://hidden.example.org/\">the link</a></body></html>\r\n";
    assert!(by_text("quarterly results & outlook").matches_bytes(raw), "tags out, entities decoded");
    assert!(by_text("the link").matches_bytes(raw));
    assert!(!by_text("<b>").matches_bytes(raw), "markup is not text");
}

#[test]
fn text_covers_header_fields_and_attached_messages() {
    let raw = b"From: ana@example.org\r\n\
Subject: fwd\r\n\
X-Ticket: T-4711\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"o\"\r\n\
\r\n\
--o\r\n\
Content-Type: text/plain\r\n\
\r\n\
see attached\r\n\
--o\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: the original\r\n\
\r\n\
budget line 42\r\n\
--o--\r\n";
    assert!(by_text("t-4711").matches_bytes(raw), "a header field's value");
    assert!(by_text("x-ticket: t-4711").matches_bytes(raw), "Name: value");
    assert!(by_text("BUDGET line 42").matches_bytes(raw), "the attached message's text");
    assert!(by_text("the original").matches_bytes(raw), "the attached message's header");
    assert!(!by_text("budget line 43").matches_bytes(raw));
}

#[test]
fn every_criterion_must_match() {
    let raw =
        b"From: Ana <ana@example.org>\r\nSubject: Invoice 2023\r\nMessage-ID: <i@x>\r\n\r\nPlease pay.\r\n";
    let both =
        matcher(SearchCriteria { from: vec!["ana".into()], subject: vec!["invoice".into()], ..criteria() });
    assert!(both.matches_bytes(raw));
    let wrong_subject =
        matcher(SearchCriteria { from: vec!["ana".into()], subject: vec!["receipt".into()], ..criteria() });
    assert!(!wrong_subject.matches_bytes(raw));
    let two_subjects =
        matcher(SearchCriteria { subject: vec!["invoice".into(), "2023".into()], ..criteria() });
    assert!(two_subjects.matches_bytes(raw));
    let one_missing =
        matcher(SearchCriteria { subject: vec!["invoice".into(), "2024".into()], ..criteria() });
    assert!(!one_missing.matches_bytes(raw), "repeated values must each be there");
    let all = matcher(SearchCriteria {
        message_id: vec!["i@x".into()],
        from: vec!["ANA@".into()],
        subject: vec!["voice 20".into()],
        text: vec!["please  PAY".into()],
    });
    assert!(all.matches_bytes(raw));
    let id_wrong = matcher(SearchCriteria {
        message_id: vec!["j@x".into()],
        from: vec!["ana".into()],
        subject: vec!["invoice".into()],
        text: vec!["pay".into()],
    });
    assert!(!id_wrong.matches_bytes(raw), "the others match, the Message-ID does not");
    assert!(matcher(criteria()).matches_bytes(raw), "no criteria: everything");
}

#[test]
fn spooled_bodies_are_read_from_their_file() {
    let mut raw = b"Subject: big\r\nMessage-ID: <big@x>\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b"filler line\r\n".as_slice(), 2000).flatten());
    raw.extend_from_slice(b"the needle at the end\r\n");
    let mut builder = SpoolConfig { threshold: 1024, dir: None }.builder();
    builder.push(&raw).unwrap();
    let body = builder.finish().unwrap();
    assert!(body.is_spooled());
    assert!(by_id("big@x").matches(&body).unwrap());
    assert!(by_text("needle at the end").matches(&body).unwrap());
    assert!(!by_text("needle at the start").matches(&body).unwrap());
}

#[test]
fn a_listed_message_id_rules_a_message_out_without_fetching_it() {
    let mut meta = MessageMeta::new("1", 10);
    let wanted = by_id("<a@x>");
    assert!(!wanted.excludes_listed(&meta), "nothing listed: it must be read");
    meta.message_id = Some(" <b@x>".into());
    assert!(wanted.excludes_listed(&meta));
    meta.message_id = Some("<a@x>".into());
    assert!(!wanted.excludes_listed(&meta));
    meta.message_id = Some("<b@very-long-and-cut".into());
    assert!(!wanted.excludes_listed(&meta), "a value cut short proves nothing");
    let rebuilt = MessageMeta::new("3", 10).with_reconstructed(true);
    let rebuilt = MessageMeta { message_id: Some("<b@x>".into()), ..rebuilt };
    assert!(!wanted.excludes_listed(&rebuilt), "a rebuilt message is read");
    assert!(!by_subject("x").excludes_listed(&MessageMeta::new("2", 1)));
}

#[test]
fn a_message_without_header_can_match_text_only() {
    let raw = b"\r\njust a body with a word\r\n";
    assert!(by_text("a word").matches_bytes(raw));
    assert!(!by_subject("word").matches_bytes(raw));
}

#[test]
fn folding_lowers_case_and_squeezes_white_space() {
    assert_eq!(fold("  Hello \t\r\n  WÖRLD  "), "hello wörld");
    assert_eq!(normalise_message_id(" <a b@x> (comment)"), "ab@x");
    assert_eq!(normalise_message_id("a@x"), "a@x");
}
