//! Response codes (`[CODE args]` in a status response, RFC 3501 §7.1), typed: every code the crate
//! acts on is a [`ResponseCode`] with the RFC (or the provider) that defines it. The wire keeps
//! each code as text ([`crate::wire::Code`]), so that a code no RFC here names is still shown to
//! the user; [`ResponseCode::of`] reads the ones we act on.

/// A response code the crate acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ResponseCode {
    /// `UIDVALIDITY n` (RFC 3501 §7.1): the mailbox's epoch, after SELECT.
    UidValidity,
    /// `UIDNEXT n` (RFC 3501 §7.1): the next UID the mailbox will assign.
    UidNext,
    /// `PERMANENTFLAGS (...)` (RFC 3501 §7.1): the flags that can be stored; `\*` for keywords.
    PermanentFlags,
    /// `CAPABILITY ...` (RFC 3501 §7.1): capabilities in a greeting or login answer.
    Capability,
    /// `TRYCREATE` (RFC 3501 §7.1): an APPEND to a mailbox that does not exist.
    TryCreate,
    /// `APPENDUID validity uid` (RFC 4315 §3): where an APPEND stored the message.
    AppendUid,
    /// `COPYUID validity source-uids destination-uids` (RFC 4315 §3, RFC 6851 §4.3): where a
    /// COPY or MOVE put the messages.
    CopyUid,
    /// `ALREADYEXISTS` (RFC 5530 §3): CREATE of a mailbox that exists.
    AlreadyExists,
    /// `NONEXISTENT` (RFC 5530 §3): the mailbox does not exist.
    NonExistent,
    /// `OVERQUOTA` (RFC 5530 §3, RFC 9208): the account is full.
    OverQuota,
    /// `TOOBIG` (RFC 4469 §5): the message is larger than the server takes.
    TooBig,
    /// `LIMIT` (RFC 5530 §3): a server limit was reached (size, count).
    Limit,
    /// `UNAVAILABLE` (RFC 5530 §3): temporarily unable to serve.
    Unavailable,
    /// `INUSE` (RFC 5530 §3): the mailbox or account is busy.
    InUse,
    /// `THROTTLED` (no RFC; large providers): the client goes too fast.
    Throttled,
    /// `AUTHENTICATIONFAILED` (RFC 5530 §3).
    AuthenticationFailed,
    /// `AUTHORIZATIONFAILED` (RFC 5530 §3).
    AuthorizationFailed,
    /// `EXPIRED` (RFC 5530 §3): the credentials expired.
    Expired,
    /// `SERVERBUG` (RFC 5530 §3): the server failed; trying again may work.
    ServerBug,
    /// `EXPUNGEISSUED` (RFC 5530 §3): another session expunged meanwhile; trying again may work.
    ExpungeIssued,
    /// `USEATTR` (RFC 6154 §6): the special-use attribute of a CREATE was refused (Cyrus allows
    /// one folder per role).
    UseAttr,
}

impl ResponseCode {
    /// Every code, for [`ResponseCode::of`].
    const ALL: [ResponseCode; 21] = [
        ResponseCode::UidValidity,
        ResponseCode::UidNext,
        ResponseCode::PermanentFlags,
        ResponseCode::Capability,
        ResponseCode::TryCreate,
        ResponseCode::AppendUid,
        ResponseCode::CopyUid,
        ResponseCode::AlreadyExists,
        ResponseCode::NonExistent,
        ResponseCode::OverQuota,
        ResponseCode::TooBig,
        ResponseCode::Limit,
        ResponseCode::Unavailable,
        ResponseCode::InUse,
        ResponseCode::Throttled,
        ResponseCode::AuthenticationFailed,
        ResponseCode::AuthorizationFailed,
        ResponseCode::Expired,
        ResponseCode::ServerBug,
        ResponseCode::ExpungeIssued,
        ResponseCode::UseAttr,
    ];

    /// The code's name as servers send it.
    pub const fn name(self) -> &'static str {
        match self {
            ResponseCode::UidValidity => "UIDVALIDITY",
            ResponseCode::UidNext => "UIDNEXT",
            ResponseCode::PermanentFlags => "PERMANENTFLAGS",
            ResponseCode::Capability => "CAPABILITY",
            ResponseCode::TryCreate => "TRYCREATE",
            ResponseCode::AppendUid => "APPENDUID",
            ResponseCode::CopyUid => "COPYUID",
            ResponseCode::AlreadyExists => "ALREADYEXISTS",
            ResponseCode::NonExistent => "NONEXISTENT",
            ResponseCode::OverQuota => "OVERQUOTA",
            ResponseCode::TooBig => "TOOBIG",
            ResponseCode::Limit => "LIMIT",
            ResponseCode::Unavailable => "UNAVAILABLE",
            ResponseCode::InUse => "INUSE",
            ResponseCode::Throttled => "THROTTLED",
            ResponseCode::AuthenticationFailed => "AUTHENTICATIONFAILED",
            ResponseCode::AuthorizationFailed => "AUTHORIZATIONFAILED",
            ResponseCode::Expired => "EXPIRED",
            ResponseCode::ServerBug => "SERVERBUG",
            ResponseCode::ExpungeIssued => "EXPUNGEISSUED",
            ResponseCode::UseAttr => "USEATTR",
        }
    }

    /// The code named `name` (upper-case, as [`crate::wire`] keeps it), when we act on it.
    pub fn of(name: &str) -> Option<ResponseCode> {
        Self::ALL.into_iter().find(|code| code.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for code in ResponseCode::ALL {
            assert_eq!(ResponseCode::of(code.name()), Some(code));
        }
        assert_eq!(ResponseCode::of("ALERT"), None);
    }
}
