//! IMAP source and sink for mailmove.
//!
//! [`ImapStore`] is one IMAP account, usable as a [`MailSource`](mailmove_core::MailSource) (read
//! with EXAMINE and `BODY.PEEK[]`, so nothing changes at the source) and as a
//! [`MailSink`](mailmove_core::MailSink) (CREATE, APPEND). Open it from a URL:
//!
//! ```no_run
//! # async fn demo() -> mailmove_core::Result<()> {
//! use mailmove_core::{MailSource, Secret};
//! use mailmove_imap::{ImapConfig, ImapStore};
//!
//! let config = ImapConfig::from_url("imaps://alice@mail.example.org")?
//!     .with_password(Secret::new(std::env::var("PASSWORD").unwrap_or_default()));
//! let store = ImapStore::connect(config).await?;
//! for folder in store.list_folders().await? {
//!     println!("{} {:?} {:?} messages", folder.path, folder.path.role(), folder.messages);
//! }
//! # Ok(()) }
//! ```
//!
//! # Design
//! **Protocol layer.** The crate speaks IMAP through a thin layer of its own (the `conn`, `wire` and
//! `protocol` modules; see [Layers](#layers)) rather than async-imap's session: async-imap 0.12 parses with
//! imap-proto, which cannot read a `NAMESPACE` response, 8-bit response text, LIST-EXTENDED data or literal8,
//! and a response it cannot parse ends the connection; it also buffers each response whole, cannot send
//! `LITERAL+`/literal8, drops APPENDUID and has no timeouts. Our layer frames responses line by line, streams
//! large literals straight into [`SpoolConfig`](mailmove_core::SpoolConfig) files (a 40 MB message never sits
//! in memory whole), keeps response codes as text so that `OVERQUOTA`, `TOOBIG`, `THROTTLED`, `APPENDUID` are
//! all readable, and puts a time limit on every read and write
//! ([`Error::Timeout`](mailmove_core::Error::Timeout)).
//!
//! **Connections and pipelining.** A pool of up to [`ImapConfig::max_connections`] authenticated
//! connections (the declared concurrency; default 4, `connections=N`). Every read operation
//! borrows a connection only for one bounded command sequence and returns it before yielding
//! results, so streams never pin a connection while the engine is busy elsewhere; it prefers a
//! connection that already has the folder selected. Commands that do not depend on each other go
//! out together: EXAMINE with UID SEARCH, the STATUS of every folder, the UID FETCH commands of a
//! batch (one round trip each). A connection that failed (I/O error, timeout, BYE) is dropped; the
//! next operation opens a new one, so a cut costs one transient error, which the engine retries.
//!
//! **Security.** Certificates are verified against the system roots (plus `ca=PATH`); STARTTLS is
//! required for `imap://` unless `tls=none` is given, and anything the server sent before the
//! handshake is discarded. CR, LF and NUL are refused in every value placed in a command. Secrets
//! are [`Secret`](mailmove_core::Secret)s and appear in no error.
//!
//! **Folders.** Names are mapped through the personal namespace prefix, the server's hierarchy
//! delimiter and modified UTF-7 ([`utf7`]), or UTF-8 after `ENABLE UTF8=ACCEPT`. Special-use
//! attributes give roles; `\Noselect` parents are listed as not selectable; only the personal
//! namespace is listed.
//!
//! **Keys and epochs.** A message key is its UID; a folder's epoch is its UIDVALIDITY. Listing
//! honours `after` (`UID SEARCH UID n+1:*`, filtered, since `n+1:*` always matches the last
//! message); with a watermark, one `STATUS (UIDNEXT)` answers "nothing new" without selecting the
//! folder, so a re-run over unchanged folders costs one command per folder. A listing refuses to
//! run when UIDVALIDITY changed since the folders were listed (the engine's checkpoint is keyed by
//! the listed epoch).
//!
//! **Sink.** APPEND carries the flags the folder's PERMANENTFLAGS allow (keywords only with `\*`)
//! and the internal date, as a non-synchronising literal under `LITERAL+` (and under `LITERAL-` up
//! to 4096 bytes). Appends are pipelined per folder (`pipeline=N` in flight, default 64):
//! `append` returns once the message is sent and `flush` reads the answers, returning `Ok` only
//! when the server confirmed every one; see the `append` module for how refusals, quota,
//! throttling and cuts become errors. Messages with NUL bytes go one at a time as literal8 when the
//! server offers BINARY (and are refused otherwise); `[TRYCREATE]` creates the folder and retries,
//! unless the folder exists (then the message may have been stored: the engine reconciles first).
//! `list_existing` hashes bodies as they arrive and remembers fingerprints by UID, so a second
//! reconcile of a folder downloads only what is new. Nothing trusts `APPENDUID` for correctness:
//! it only becomes the informational destination key of synchronous appends.
//!
//! **What was stored.** After each flush the sink checks what the server holds against what it
//! sent (`check=cheap|full|off`, the `stored` module): `DIGEST.SHA1` where offered, else size and
//! header section, read back whole when they differ; each altered copy goes to the engine with what
//! changed and its fingerprint. Raw 8-bit header bytes are encoded before APPEND
//! ([`mailmove_core::headers8bit`]) for a server known or seen to rewrite them
//! (`headers8bit=auto|encode|raw`). A server's mbox bookkeeping headers (imap4d's `X-UID`) are not
//! part of the message: once seen, messages are read without them (the `bookkeeping` module).
//!
//! **Rate limits and compression.** `rate=2MB` (bytes per second, both directions) and
//! `msgrate=10` (messages per second, fetched or appended) hold for the account over all its
//! connections. `compress=on` turns on COMPRESS=DEFLATE (RFC 4978) when the server offers it.
//!
//! **Hostile servers.** A server is not trusted to be well-behaved. Every response has a deadline
//! ([`mailmove_net::deadline`]: `timeout=`, then at least `min_rate=` bytes/s on average), so a
//! slow-loris is cut. A literal larger than its place allows is never read whole: a body beyond the
//! `RFC822.SIZE` announced before it (plus a margin) ends the connection and fails that message
//! with both sizes; a string (a mailbox name) over 1 MiB is read and dropped, and its folder named
//! as unusable. A UID answered twice with different bodies, a FETCH that leaves out a UID the
//! folder still holds (checked with UID SEARCH, so "vanished" is said only when true), and
//! unparsable responses become named failures or warnings
//! ([`MailSource::warnings`](mailmove_core::MailSource::warnings)); messages that arrived whole before a cut or BYE are kept.
//! Listing is linear in the number of mailboxes; a name no [`FolderPath`](mailmove_core::FolderPath)
//! can keep apart from another (`a//b`, CR/LF/NUL, a duplicate after decoding) is listed with
//! [`FolderInfo::problem`](mailmove_core::FolderInfo::problem), so the run fails that folder by name
//! and copies the rest. Each LIST entry's own delimiter splits its name. As a sink, a folder whose
//! name differs from another of the run only in case is refused when the server folds case.
//!
//! **Under fire.** Every read and write, the connect and the TLS handshake have a time limit
//! (`timeout=`). A cut becomes [`Error::Connection`](mailmove_core::Error::Connection), BYE a
//! transient error, `[THROTTLED]`/`[UNAVAILABLE]`/"Suggested Backoff Time" an
//! [`Error::Throttled`](mailmove_core::Error::Throttled) with the hint, `[OVERQUOTA]`
//! [`Error::QuotaExceeded`](mailmove_core::Error::QuotaExceeded), `[TOOBIG]`/`[LIMIT]`/refusals
//! per-message failures. A server finishes the commands it had received before a connection died,
//! so after a cut with APPENDs unanswered the backend waits until the folder is quiet, and the
//! first write into a folder that a killed run may have been writing to waits for it too and
//! recognises the copies that arrived after the folder was read (module `late_arrivals`: a run that
//! finds every copy there waits for nothing); and every listing or
//! reconcile reads a fresh selection (a session that has a folder selected does not see what other
//! sessions added until the server tells it).
//!
//! # Servers as they are
//! What the test suite found on the three servers it runs against (`scripts/dovecot.sh`,
//! `scripts/cyrus.sh`, `scripts/mailutils.sh`), and what the crate does about it:
//!
//! | | Dovecot 2.3 | Cyrus IMAP 3.6 | GNU Mailutils imap4d 3.15 |
//! | --- | --- | --- | --- |
//! | separator, namespace | `/` or `.`, personal `""` | `.`, personal `INBOX.`; intermediate levels are real mailboxes | `/`, personal `""`, one mbox file per folder |
//! | bare LF / lone CR in APPEND | stored | refused ("Message contains bare newlines"): we always send CRLF | stored |
//! | raw 8-bit header bytes | stored | each replaced by `X`, answered OK: we encode them first | stored |
//! | NUL bytes | BINARY; a `binary` part is re-encoded as base64: named as altered | BINARY; the same | no BINARY: refused by name |
//! | invalid header field name (`Fro :x`) | stored | refused ("invalid header") | `NO [TRYCREATE]`, sometimes after storing it: not sent again before a reconcile |
//! | message without a final newline | stored | stored | stored with one: named as altered |
//! | UIDPLUS / APPENDUID | yes | yes | no: the check reads back what arrived since the lane's UIDNEXT |
//! | DIGEST=SHA1 | no | yes: the cheap check is complete | no |
//! | special-use | `\Sent` ... listed | only with CREATE-SPECIAL-USE; one folder per role (`[USEATTR]`) | none |
//! | keywords | `\*` in PERMANENTFLAGS | `\*` | no `\*`: keywords are not stored (flags are) |
//! | COMPRESS=DEFLATE | when configured | yes | no |
//! | `\Recent` | counted in EXAMINE until a read-write SELECT; each APPEND slows with their number (850 → 150 messages/s by 125,000): the check takes them once 1,024 pile up | counted per user; taken the same way | counted; not taken (no UIDPLUS: see below) |
//! | other | | `sasl_pwcheck_method: alwaystrue` for throw-away users; INBOX created by the admin | a read-write session rewrites the mbox when it ends (we SELECT only to learn PERMANENTFLAGS, then EXAMINE); `X-UID`, `X-IMAPbase`, `Status` headers shown in `BODY[]`; `[TRYCREATE]` after the command name |
//!
//! # Layers
//! The modules form layers whose imports point down only (`tests/layers.rs` holds the table and
//! fails when a module names one of a higher layer), so that each can be read and changed knowing
//! only what is below it:
//!
//! | layer | modules | holds |
//! | --- | --- | --- |
//! | base | `capability`, `code`, [`utf7`], `lock` | capabilities and response codes, typed, with their RFCs; modified UTF-7 |
//! | transport | `conn`, `stream`, `wire`, `literal`, `nul_bytes`, `session`, `compress`, `rate`, `tls`, `config`, `errors` | one connection: bytes, framing, the response grammar, login, time limits; server answers as errors |
//! | protocol | `protocol::{select, status, list, search, fetch, append, sequence}`, `names`, `bookkeeping` | how each command is written and its answer read, over one connection; a server's mbox bookkeeping headers |
//! | pool | `pool` | the account's connections, borrowed per command sequence |
//! | state | `mailbox`, `fingerprints` | what the store knows about the mailboxes (listed names, PERMANENTFLAGS, the listing's STATUS and UIDVALIDITY, what it created; fingerprints by UID), each piece with its rules |
//! | store | `store`, `source`, `sink`, `folders`, `append` (lanes; `append::single`), `existing` (fingerprint index), `stored` (the post-store check) | [`ImapStore`] and its operations |
//!
//! # Limits (documented, not hidden)
//! * `list_existing` fetches every message body of the folder it has not hashed before: correct
//!   but as costly as downloading the folder the first time. The engine's reconcile by content
//!   uses `list_existing_knowing`, which skips the bodies of the copies its checkpoint names by
//!   key, so a resume downloads what the crash left unconfirmed; a first run by content
//!   (`--reconcile content`) still downloads the folder.
//! * A folder's UID list is held in memory while it is listed (4 bytes a message), and the
//!   fingerprint cache up to [`ImapConfig::fingerprint_cache`] entries (6.4 MB when full by default).
//! * A pipelined append returns no destination key (its APPENDUID arrives at `flush`, which cannot
//!   return it); `pipeline=0` gives keys at one round trip per message.
//! * "Quiet" means a folder's message count and UIDNEXT did not change for one second (at most 30
//!   seconds of waiting): a server that takes longer than that between two stores of a dead
//!   session's APPENDs, or another client writing to the same folder, defeats it. A late copy is
//!   recognised by its strict fingerprint: one the server altered is not.
//! * `list_existing` does not wait for quiet (the first write does): a `verify` run while a
//!   killed run's APPENDs are still being stored may report those messages missing.
//! * A pipelined APPEND refused for good (`[TOOBIG]`, content) is reported at `flush`, which cannot
//!   name the message: `flush` fails transiently, the engine reconciles, and the folder's appends
//!   go one at a time from then on so that the refusal lands on its message.
//! * A server that shows mbox bookkeeping headers (imap4d) lists sizes (`RFC822.SIZE`) that include
//!   them, while its bodies are read without them: the listed size of such a message is a little
//!   larger than the message.
//! * Keywords go only to a folder whose PERMANENTFLAGS has `\*` (imap4d has none): elsewhere they are
//!   left out of the APPEND, and `verify` reports the flags as changed.
//! * OAuth2: a token given with [`ImapConfig::with_token`] is used as given; give a
//!   [`TokenProvider`](mailmove_core::TokenProvider) with [`ImapConfig::with_token_provider`] for
//!   long runs (asked before every connection, a refused token invalidated and replaced once).
//!
//! # Throughput
//! `cargo bench -p mailmove-imap --bench imap_throughput` starts a throw-away Dovecot, fills an
//! account with the synthetic mailbox (3,000 messages up to 4 MiB) and times IMAP→IMAP copies on
//! loopback and through a 20 ms round-trip proxy, against mbsync on the same data when it is
//! installed, with our peak RSS and a re-run over unchanged folders (see the bench's docs).

// Layers, lowest first (tests/layers.rs holds the table and fails on an upward import).
// Base: the protocol's vocabulary and locking.
mod capability;
mod code;
mod lock;
pub mod utf7;
// Transport.
mod compress;
mod config;
mod conn;
mod errors;
mod literal;
mod nul_bytes;
mod rate;
mod session;
mod stream;
mod tls;
mod wire;
// Protocol: one module per command family.
mod bookkeeping;
mod names;
mod protocol;
mod quota;
// Connection pool.
mod pool;
// Mailbox state.
mod fingerprints;
mod mailbox;
// The store and its operations.
mod append;
mod copy_changes;
mod existing;
mod folders;
mod identities;
mod late_arrivals;
mod search;
mod sink;
mod source;
mod store;
mod stored;

pub use config::{AuthMethod, Headers8bit, ImapConfig, StoreCheck, TlsMode};
pub use store::ImapStore;
