//! What mailmove's network backends (IMAP, POP3) share, written once so that the two protocols
//! cannot drift apart.
//!
//! # Why one crate
//!
//! IMAP and POP3 are different protocols over the same plumbing: a URL naming a server account,
//! TLS set up the same way, the same SASL mechanisms, the same OAuth2 tokens, the same rules for
//! slow servers. Written once per protocol, each of these drifted (an untrusted certificate was a
//! configuration error over IMAP and a backend error over POP3; `?TLS=none` worked over POP3
//! only; `k` meant 1,000 in one option and 1,024 in another). Here each rule has one home, and
//! the protocol crates keep only what is really theirs: commands, replies, capabilities, and
//! the keys and values only they know (`auth=`, `connections=`, …).
//!
//! * [`tls`]: the rustls client configuration (system roots, `ca=PATH`, a self-signed server
//!   certificate given as `ca=` accepted as a pinned certificate) and the handshake with its
//!   error classification: a certificate problem is a configuration error (the user must act),
//!   anything else a transient connection error.
//! * [`tls_mode`]: [`TlsMode`] (implicit, STARTTLS/STLS, none) and the `tls=` values, both
//!   protocols' spellings accepted by both.
//! * [`server_url`]: `SCHEME://USER[:PASSWORD]@HOST[:PORT]/?KEYS` — scheme to default port and
//!   implicit TLS, user and password percent-decoded (the password a
//!   [`Secret`](mailmove_core::Secret)), IPv6 hosts in brackets, and the query keys both
//!   protocols share (`tls`, `ca`, `timeout`, `min_rate`) under the query rule of
//!   [`mailmove_core::url_query`] (which `maildir:` and `mbox:` follow too; it lives in the core
//!   crate because those backends do not depend on this one).
//! * [`sasl`]: the initial responses of PLAIN, XOAUTH2 and OAUTHBEARER, and what to answer to an
//!   error challenge.
//! * [`token`]: the OAuth2 rule at login: ask the token provider before every login, and when the
//!   server refuses the token, invalidate it and try once more with a fresh one.
//! * [`deadline`]: the rule that bounds how long a response may take: a server must answer
//!   within the time limit and then keep delivering at a minimum rate, so a server that sends
//!   one byte a second cannot hold a run forever.
//! * [`trace`]: protocol traces for a provider's support, every secret and message byte
//!   redacted by one set of rules for both protocols, and the process-wide default trace.
//!
//! Sizes and rates (`min_rate=4k`) are read with [`mailmove_core::units`], the one parser of
//! units in mailmove.
//!
//! # Example
//! ```
//! use mailmove_net::server_url::{Protocol, Scheme, ServerUrl};
//! use mailmove_net::TlsMode;
//!
//! const IMAP: Protocol = Protocol {
//!     name: "IMAP",
//!     schemes: &[Scheme { name: "imap", implicit_tls: false }, Scheme { name: "imaps", implicit_tls: true }],
//!     plain_port: 143,
//!     tls_port: 993,
//!     keys: &["auth"],
//! };
//! let url = ServerUrl::parse(&IMAP, "imap://me%40example.org:s3cret@[::1]/?TLS=implicit").unwrap();
//! assert_eq!((url.user.as_str(), url.host.as_str(), url.port, url.tls), ("me@example.org", "::1", 993, TlsMode::Implicit));
//! assert!(ServerUrl::parse(&IMAP, "imap://me@host/?tsl=none").is_err());
//! ```

pub mod deadline;
pub mod sasl;
pub mod server_url;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tls;
pub mod tls_mode;
pub mod token;
pub mod trace;

pub use tls_mode::TlsMode;
