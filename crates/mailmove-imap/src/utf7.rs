//! Modified UTF-7 (RFC 3501 §5.1.3), the mailbox name encoding of IMAP4rev1: the codec lives in
//! [`mailmove_core::mutf7`] (Maildir++ names on disk use it too); it is re-exported here.
//!
//! ```
//! assert_eq!(mailmove_imap::utf7::encode("Entwürfe & Co"), "Entw&APw-rfe &- Co");
//! ```

pub use mailmove_core::mutf7::{decode, encode, DecodeError};
