//! What may reach a terminal: the one rule for text that came from a server or a file.
//!
//! Folder names, message keys, Message-IDs, subjects, server replies and the error messages that
//! quote them are chosen by whoever wrote the mailbox or runs the server. Printed raw, an ESC
//! sequence among them could recolour or rewrite the screen, set the window title, or hide a line
//! of the summary; a bidi override could make a name read as another. Every human output of the
//! command therefore passes such text through [`terminal_safe`] (or, for a text rendered by a
//! library, [`terminal_safe_lines`] / [`escape_strings`]). The JSON output needs none of this:
//! serde already writes control characters as `\u001b` escapes, and it must stay exact.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Whether a character must not reach a terminal as it is.
///
/// C0 controls (all of them: a folder name never needs a raw line break or tab, and a line break
/// inside one could forge a line of the summary), DEL, C1 controls (U+0080–U+009F: some terminals
/// take U+009B as CSI) and the bidi embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069) that reorder what is displayed.
pub fn is_unsafe(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every [unsafe](is_unsafe) character written as a visible escape: `\x1b` for an
/// ASCII control, `\u{202e}` for the others. Borrows when there is nothing to escape (the usual
/// case). Backslashes are left alone: this is for reading, not a reversible encoding; the JSON
/// output is the exact form.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe(c) {
            out.push(c);
        } else if c.is_ascii() {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// A multi-line text made by a library (whose values this command cannot reach one by one):
/// every line passed through [`terminal_safe`], its line breaks kept.
///
/// Prefer [`escape_strings`] on the data before rendering, which also keeps a line break inside a
/// name from starting a line of its own; this is the last guard on what is printed.
pub fn terminal_safe_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(text);
    }
    let lines: Vec<Cow<'_, str>> = text.split('\n').map(terminal_safe).collect();
    Cow::Owned(lines.join("\n"))
}

/// A copy of `value` with [`terminal_safe`] applied to every string in it (map keys too), for
/// handing to a library's human renderer. Goes through its serde form, so no field can be
/// forgotten when the type grows one; `None` if the type does not read back its own JSON.
pub fn escape_strings<T: Serialize + DeserializeOwned>(value: &T) -> Option<T> {
    fn walk(value: Value) -> Value {
        match value {
            Value::String(text) => Value::String(terminal_safe(&text).into_owned()),
            Value::Array(items) => Value::Array(items.into_iter().map(walk).collect()),
            Value::Object(map) => Value::Object(
                map.into_iter().map(|(key, item)| (terminal_safe(&key).into_owned(), walk(item))).collect(),
            ),
            other => other,
        }
    }
    serde_json::from_value(walk(serde_json::to_value(value).ok()?)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in ["INBOX", "Archiv/2019 Übersicht", "日本語", "a\\b", ""] {
            assert!(matches!(terminal_safe(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn controls_and_bidi_overrides_become_visible_escapes() {
        let cases = [
            ("Evil\u{1b}[31mRed\u{7}", "Evil\\x1b[31mRed\\x07"),
            ("a\nb\tc\rd\0", "a\\x0ab\\x09c\\x0dd\\x00"),
            ("del\u{7f}", "del\\x7f"),
            ("csi\u{9b}2J nel\u{85} end\u{80}\u{9f}", "csi\\u{9b}2J nel\\u{85} end\\u{80}\\u{9f}"),
            ("txt.\u{202e}fdp", "txt.\\u{202e}fdp"),
            ("\u{202a}\u{2066}x\u{2069}", "\\u{202a}\\u{2066}x\\u{2069}"),
        ];
        for (raw, shown) in cases {
            assert_eq!(terminal_safe(raw), shown, "{raw:?}");
            assert!(!terminal_safe(raw).chars().any(is_unsafe));
        }
        // Neighbours of the ranges are ordinary text.
        for c in ['\u{20}', '\u{7e}', '\u{a0}', '\u{2029}', '\u{202f}', '\u{2065}', '\u{206a}'] {
            assert!(!is_unsafe(c), "{c:?}");
        }
    }

    #[test]
    fn lines_keep_their_breaks_and_lose_everything_else() {
        assert_eq!(terminal_safe_lines("a\u{1b}b\nc\td\n"), "a\\x1bb\nc\\x09d\n");
        assert!(matches!(terminal_safe_lines("one\ntwo\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_string_of_a_value_is_escaped_keys_included() {
        #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
        struct Row {
            name: String,
            tags: Vec<String>,
            by_folder: std::collections::BTreeMap<String, u64>,
            note: Option<String>,
            size: u64,
            secs: f64,
        }
        let row = Row {
            name: "x\u{1b}]0;pwned\u{7}".into(),
            tags: vec!["\u{202e}gpj".into()],
            by_folder: [("F\nake".to_string(), 3)].into(),
            note: None,
            size: u64::MAX,
            secs: 0.1 + 0.2,
        };
        let escaped = escape_strings(&row).expect("round trip");
        assert_eq!(escaped.name, "x\\x1b]0;pwned\\x07");
        assert_eq!(escaped.tags, vec!["\\u{202e}gpj".to_string()]);
        assert_eq!(escaped.by_folder.keys().collect::<Vec<_>>(), vec!["F\\x0aake"]);
        assert_eq!((escaped.note, escaped.size, escaped.secs), (None, u64::MAX, 0.1 + 0.2));
    }
}
