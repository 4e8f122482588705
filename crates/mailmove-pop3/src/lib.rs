//! The POP3 source of mailmove: a maildrop read over POP3 (RFC 1939) as a
//! [`MailSource`](mailmove_core::MailSource), with a small async client of its own on tokio.
//!
//! # Design
//! * **One folder, UIDL keys.** A maildrop is one `INBOX` (role Inbox). Each message's key is its
//!   `UIDL`, which the server keeps for the life of the message, so the folder has no epoch and
//!   the engine's checkpoint (keyed by UIDL) makes a re-run copy only new messages. Message
//!   numbers are valid only inside one session: after a reconnect the source lists again and maps
//!   keys to the new numbers. A server without `UIDL` is keyed by content fingerprints instead
//!   (`blake3:<hex>:<occurrence>`, the folder then gets epoch [`CONTENT_KEY_EPOCH`]); that costs
//!   one full download of every message just to list, in every session. The listing (key, number
//!   and size per message, from one `LIST` and one `UIDL`) is held in memory: tens of bytes per
//!   message.
//! * **No flags, no dates.** POP3 has neither, so the capabilities say `flags`, `keywords` and
//!   `internal_dates` are false: messages arrive unflagged and the destination picks the date.
//!   Taking a date from `Date:`/`Received:` was left out on purpose: it would be a guess
//!   presented as a fact. Sizes come from `LIST`.
//! * **Bytes as stored.** `RETR` is read as a stream through a dot-unstuffing state machine
//!   (a line starting `..` loses one dot, the response ends at a line that is exactly `.` CRLF),
//!   CRLF kept as sent, lines of any length, bodies written through
//!   [`SpoolConfig`](mailmove_core::SpoolConfig) so a large message never sits in memory. A
//!   message without a final line break reaches the client with one added by the server
//!   (RFC 1939 needs the terminator on its own line); when the result is exactly two bytes longer
//!   than the size `LIST` reported, those two bytes are dropped again.
//! * **Never deletes by default.** Reading changes nothing (no `DELE`, and the session ends with
//!   `QUIT` only from [`Pop3Source::close`] and [`Pop3Source::delete_keys`]). For
//!   `--delete-after`, [`Pop3Source::delete_keys`] marks the given keys with `DELE` in one
//!   session and commits with `QUIT` — POP3 servers delete only when `QUIT` succeeds, so a cut
//!   connection deletes nothing — and it refuses to run unless the configuration allows it
//!   ([`Pop3Config::with_delete_after`]). Call it only with keys the engine has confirmed durable
//!   at the destination and recorded in the checkpoint. One server changes its mailbox on its own
//!   when a session ends, even a dropped one: GNU Mailutils pop3d rewrites its mbox with
//!   `Status: OR` (read) and `X-UIDL` on every message read, and holds the mailbox locked for the
//!   whole session (its IMAP access waits); `tests/other_servers.rs` shows it. mailmove cannot stop
//!   that; the checkpoint is keyed by UIDL, so a re-run is not confused by the changed bytes.
//! * **Failures.** Every network operation has a timeout (60 s by default, per read, not per
//!   message) that ends in [`Error::Timeout`](mailmove_core::Error::Timeout); a cut connection is
//!   [`Error::Connection`](mailmove_core::Error::Connection). Both are transient: the session is
//!   dropped and the next operation opens a new one. A rejected login is
//!   [`Error::Auth`](mailmove_core::Error::Auth) whose message never holds the password.
//! * **Security.** `pop3://` requires STLS unless `tls=none` is given: a server that does not
//!   offer it is refused before any credential is sent. Certificates are verified by rustls
//!   (ring) against the system roots plus `ca=PATH`. Bytes buffered before the TLS handshake are
//!   discarded (STARTTLS injection), capabilities are asked again over TLS, and no command
//!   argument may contain CR, LF or NUL.
//!
//! # URLs
//! ```text
//! pop3://USER[:PASS]@HOST[:PORT]/?tls=stls|implicit|none&auth=user|plain|xoauth2|oauthbearer&ca=PATH&timeout=SECS&min_rate=RATE
//! pop3s://USER[:PASS]@HOST[:PORT]/?auth=…&ca=PATH
//! ```
//! See [`config`] for the details. What POP3 shares with IMAP is written once in `mailmove-net`:
//! the URL's form and its common keys, [`TlsMode`], TLS, the SASL initial responses and the
//! OAuth2 token rule (a refused token is invalidated and replaced once). Passwords and tokens may be set after parsing with
//! [`Pop3Config::with_password`] / [`Pop3Config::with_token`].
//!
//! # Example
//! ```no_run
//! # async fn run() -> mailmove_core::Result<()> {
//! use mailmove_core::{engine::Copier, memory::MemoryStore, Secret};
//! use mailmove_pop3::{Pop3Config, Pop3Source};
//!
//! let config = Pop3Config::from_url("pop3s://alice@mail.example.org")?
//!     .with_password(Secret::new("from the environment"));
//! let source = Pop3Source::connect(config).await?; // logs in now: wrong password → Error::Auth
//! let destination = MemoryStore::new("archive");
//! let report = Copier::new(source, destination).checkpoint_path("pop3.sqlite").run().await?;
//! println!("copied {} messages", report.copied);
//! # Ok(()) }
//! ```

mod auth;
pub mod config;
mod connection;
mod dot;
mod listing;
mod session;
mod source;
mod tls;

pub use config::{AuthMethod, Pop3Config, TlsMode, DEFAULT_TIMEOUT};
pub use source::{Pop3Source, CONTENT_KEY_EPOCH, HEADER_LIMIT};
