//! Server capabilities (RFC 3501 §7.2.1), typed: every one the crate acts on is a [`Capability`]
//! with the RFC that defines it, so that what a server must offer for a code path to run is
//! written once and can be looked up.
//!
//! The set a server announced is [`Capabilities`]. It still answers [`Capabilities::has`] for a
//! name given as text, because some names are built at run time (`AUTH=<mechanism>`).

use std::collections::HashSet;

/// A capability the crate acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Capability {
    /// `BINARY` (RFC 3516): literal8 (`~{n}`) in APPEND and `BINARY[]` in FETCH, the only way
    /// NUL bytes travel.
    Binary,
    /// `LITERAL+` (RFC 7888): non-synchronising literals of any size.
    LiteralPlus,
    /// `LITERAL-` (RFC 7888): non-synchronising literals up to [`LITERAL_MINUS_MAX`] bytes.
    LiteralMinus,
    /// `UIDPLUS` (RFC 4315): `UID EXPUNGE` and the `APPENDUID` response code.
    UidPlus,
    /// `SPECIAL-USE` (RFC 6154): folder roles as LIST attributes.
    SpecialUse,
    /// `LIST-EXTENDED` (RFC 5258): `LIST ... RETURN (...)`.
    ListExtended,
    /// `STATUS=SIZE` (RFC 8438): a mailbox's size in STATUS.
    StatusSize,
    /// `UTF8=ACCEPT` (RFC 6855): mailbox names in UTF-8 after ENABLE.
    Utf8Accept,
    /// `NAMESPACE` (RFC 2342): the personal namespace's prefix and delimiter.
    Namespace,
    /// `X-GM-EXT-1` (Gmail's IMAP extensions): labels as the `X-GM-LABELS` FETCH item.
    GmailExtensions,
    /// `STARTTLS` (RFC 3501 §6.2.1): the upgrade `imap://` requires before any credential.
    StartTls,
    /// `LOGINDISABLED` (RFC 3501 §6.2.3): LOGIN refused (usually until TLS).
    LoginDisabled,
    /// `SASL-IR` (RFC 4959): the initial SASL response in the AUTHENTICATE command itself.
    SaslInitialResponse,
    /// `AUTH=PLAIN` (RFC 4616): SASL PLAIN, preferred over LOGIN when offered.
    AuthPlain,
    /// `COMPRESS=DEFLATE` (RFC 4978): a compressed connection (`compress=on`).
    CompressDeflate,
    /// `CREATE-SPECIAL-USE` (RFC 6154 §3): a folder created with its role (`CREATE x (USE (\\Sent))`).
    CreateSpecialUse,
    /// `CONDSTORE` (RFC 7162 §3.1): modification sequences; `HIGHESTMODSEQ` in STATUS, which
    /// changes with every flag change, so a folder's revision can be read without selecting it.
    Condstore,
    /// `QRESYNC` (RFC 7162 §3.2): implies CONDSTORE.
    Qresync,
    /// `MOVE` (RFC 6851): `UID MOVE`, a message moved to another mailbox in one command.
    Move,
    /// `UNSELECT` (RFC 3691): leave the selected mailbox without expunging anything.
    Unselect,
    /// `QUOTA` (RFC 9208, formerly RFC 2087): `GETQUOTAROOT`, the account's use and limits.
    Quota,
    /// `ESEARCH` (RFC 4731): `UID SEARCH RETURN (ALL)` answers with a sequence set
    /// (`1:1000001`), not one number a message.
    Esearch,
}

/// Largest literal `LITERAL-` allows to be non-synchronising (RFC 7888 §4).
pub(crate) const LITERAL_MINUS_MAX: u64 = 4096;

impl Capability {
    /// The capability's name as servers announce it.
    pub const fn name(self) -> &'static str {
        match self {
            Capability::Binary => "BINARY",
            Capability::LiteralPlus => "LITERAL+",
            Capability::LiteralMinus => "LITERAL-",
            Capability::UidPlus => "UIDPLUS",
            Capability::SpecialUse => "SPECIAL-USE",
            Capability::ListExtended => "LIST-EXTENDED",
            Capability::StatusSize => "STATUS=SIZE",
            Capability::Utf8Accept => "UTF8=ACCEPT",
            Capability::Namespace => "NAMESPACE",
            Capability::GmailExtensions => "X-GM-EXT-1",
            Capability::StartTls => "STARTTLS",
            Capability::LoginDisabled => "LOGINDISABLED",
            Capability::SaslInitialResponse => "SASL-IR",
            Capability::AuthPlain => "AUTH=PLAIN",
            Capability::CompressDeflate => "COMPRESS=DEFLATE",
            Capability::CreateSpecialUse => "CREATE-SPECIAL-USE",
            Capability::Condstore => "CONDSTORE",
            Capability::Qresync => "QRESYNC",
            Capability::Move => "MOVE",
            Capability::Unselect => "UNSELECT",
            Capability::Quota => "QUOTA",
            Capability::Esearch => "ESEARCH",
        }
    }
}

/// The server's capabilities, upper-cased.
#[derive(Debug, Clone, Default)]
pub(crate) struct Capabilities(HashSet<String>);

impl Capabilities {
    pub fn from_atoms<'a>(atoms: impl IntoIterator<Item = &'a str>) -> Self {
        Capabilities(atoms.into_iter().map(|a| a.to_ascii_uppercase()).collect())
    }

    /// Whether the server announced `capability`.
    pub fn offers(&self, capability: Capability) -> bool {
        self.0.contains(capability.name())
    }

    /// Whether the server announced the capability named `name` (any case); for names built at
    /// run time (`AUTH=PLAIN`). Prefer [`Capabilities::offers`].
    pub fn has(&self, name: &str) -> bool {
        self.0.contains(&name.to_ascii_uppercase())
    }

    /// `APPENDLIMIT=n` (RFC 7889), when advertised with a number: the largest message APPEND
    /// takes.
    pub fn append_limit(&self) -> Option<u64> {
        self.0.iter().find_map(|c| c.strip_prefix("APPENDLIMIT=")).and_then(|n| n.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities() {
        let caps = Capabilities::from_atoms(["IMAP4rev1", "literal+", "APPENDLIMIT=35882577"]);
        assert!(caps.has("LITERAL+"));
        assert!(caps.offers(Capability::LiteralPlus));
        assert!(!caps.offers(Capability::LiteralMinus));
        assert_eq!(caps.append_limit(), Some(35_882_577));
    }
}
