//! The few pieces of IMAP syntax the scripted servers read and write: quoting, splitting a
//! command's arguments, UID sets. Shared by the imap crate's fake server and the facade's scripted
//! Gmail (`tests/support/gmail.rs` includes this file by path).

#![allow(dead_code)]

/// `text` as an IMAP quoted string.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Splits command arguments into strings (quoted or atoms) and raw parenthesised lists.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        other => value.push(other),
                    }
                }
                out.push(value);
            }
            '(' => {
                let mut depth = 0;
                let mut value = String::new();
                for c in chars.by_ref() {
                    value.push(c);
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    if depth == 0 {
                        break;
                    }
                }
                out.push(value);
            }
            _ => {
                let mut value = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ' ' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                out.push(value);
            }
        }
    }
    out
}

/// Whether `uid` is in an IMAP sequence set (`*` is the largest UID).
pub fn in_set(set: &str, uid: u32, max: u32) -> bool {
    let number = |s: &str| if s == "*" { Some(max) } else { s.parse::<u32>().ok() };
    set.split(',').any(|range| match range.split_once(':') {
        Some((a, b)) => match (number(a), number(b)) {
            (Some(a), Some(b)) => (a.min(b)..=a.max(b)).contains(&uid),
            _ => false,
        },
        None => number(range) == Some(uid),
    })
}
