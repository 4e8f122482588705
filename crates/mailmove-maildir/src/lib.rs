//! Maildir source and sink for mailmove, compatible with the trees Dovecot and Courier write.
//!
//! # Entry points
//! [`MaildirConfig::from_url`] parses `maildir:PATH[?layout=maildir++|fs]`; then
//! [`MaildirStore::open_source`] (an existing tree, strictly read-only),
//! [`MaildirStore::open_sink`] (creates the root when missing) or [`MaildirStore::open`] (both
//! sides; the root is created on the first write). [`MaildirStore`] implements
//! [`MailSource`](mailmove_core::MailSource) and [`MailSink`](mailmove_core::MailSink).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use mailmove_core::{Flags, FolderPath, MailSink, MailSourceExt, Message, MessageBody, MessageMeta};
//! use mailmove_maildir::{MaildirConfig, MaildirStore};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("maildir:{}/Maildir", dir.path().display());
//! let store = MaildirStore::open_sink(MaildirConfig::from_url(&url).unwrap()).unwrap();
//! let folder = FolderPath::parse("Archive/2019");
//! store.create_folder(&folder).await.unwrap();
//! let meta = MessageMeta::new("k", 0).with_flags(Flags::from_imap_list(["\\Seen"]));
//! let message = Message::new(meta, MessageBody::from_bytes(&b"Subject: hi\r\n\r\nbody\r\n"[..]));
//! store.append(&folder, &message).await.unwrap();
//! store.flush(&folder).await.unwrap(); // durable from here on
//!
//! assert!(dir.path().join("Maildir/.Archive.2019/cur").is_dir());
//! let listed = store.collect_messages(&folder).await.unwrap();
//! assert!(listed[0].flags.seen);
//! # });
//! ```
//!
//! # Layouts and folder names
//! * **Maildir++** (default): INBOX is the root maildir (`cur/`, `new/`, `tmp/` at the root); every
//!   other folder is a directory `.Parent.Child` at the root, marked with an empty
//!   `maildirfolder` file. Children of INBOX are `.INBOX.Child`.
//! * **fs**: nested directories `Parent/Child/{cur,new,tmp}`; INBOX is the root maildir and the
//!   children of INBOX live below a top-level `INBOX/` directory (a tree whose root is no maildir but
//!   holds an `INBOX/` maildir is read from there). Symbolic links are never followed (see
//!   [below](#symbolic-links-and-what-is-trusted)).
//!
//! Segments are escaped like Dovecot's `listescape` plugin (`\2e` for `.` in Maildir++, `\2f` for
//! `/`, `\5c` for `\`, a leading `.` or `~`, and in the fs layout the first letter of `cur`, `new`,
//! `tmp`) and then encoded in modified UTF-7 (`&` → `&-`, non-ASCII and control characters →
//! `&…-`). The mapping is reversible (property-tested) and no name — `..`, `a/../../b`, NUL, an
//! absolute path — can produce a path outside the root; the empty name and names longer than 255
//! bytes on disk are refused with [`Error::InvalidFolderName`](mailmove_core::Error). Directories
//! that are not valid modified UTF-7 (written by tools that store raw UTF-8) are listed under their
//! raw name and read from where they are.
//!
//! # Messages
//! * **Key**: the unique part of the file name (before `:` and before fields such as `,S=`), so a
//!   flag change or a move from `new/` to `cur/` by another client keeps the key. A fetched key
//!   whose file vanished is looked up again by scanning before it is reported as not found.
//! * **Order**: listings are sorted by key. A folder is listed in passes of at most
//!   [`MaildirConfig::listing_chunk`] names (each pass rereads the directory and keeps the next
//!   smallest names), so memory stays bounded for folders of any size. `resume_after_key` is not
//!   offered: unique names are not monotonic (a message moved in from another folder keeps its older
//!   name), so a watermark could skip new mail.
//! * **Flags**: info suffix `:2,` with letters in ASCII order: `D` \Draft, `F` \Flagged, `P` passed
//!   = keyword `$Forwarded`, `R` replied = \Answered, `S` \Seen, `T` trashed = \Deleted, and `a`–`z`
//!   for the keywords of the maildir's `dovecot-keywords` file (at most 26 per folder; a 27th
//!   keyword makes the append fail with `Refused`, never a silent drop). Letters nobody defined are
//!   kept as keywords `$MaildirFlag_X` / `$MaildirKeyword_x` (written back as `X`). Messages in
//!   `new/` have no suffix and are unseen. `$Forwarded` is written as `P` and also as a Dovecot
//!   keyword, because Dovecot ignores `P`.
//! * **Internal date** = file mtime (whole seconds, UTC); **size** = file size. Fields such as
//!   `,S=1234,W=1300` are tolerated when reading; the sink writes `,S=<size>`.
//! * Dovecot's own files (`dovecot-uidlist`, `dovecot.index*`, `dovecot.list.index*`,
//!   `subscriptions`, `maildirfolder`) are never read as messages or folders.
//!
//! # Flag updates (the cut-over delta)
//! [`MailSink::update_flags`](mailmove_core::MailSink::update_flags) renames the message file:
//! its flags are its name. The message is found by its key in `cur/` or `new/`, the change is made
//! to the flags its name holds now (so what a mail client changed there stays), and the file is
//! renamed with `rename(2)` to the same name with the new `:2,` info — within `cur/`, or from
//! `new/` to `cur/`, as every Maildir reader moves a message that gets flags. The unique part
//! stays, so the key stays valid. Keywords are stored as Dovecot keyword letters (as by an
//! append); letters nobody named are written back unchanged. `cur/` (and `new/` after a move) is
//! fsynced before the update returns. A client renaming the same file at the same moment is
//! followed: the message is looked up once more by its key and the change made to its new name;
//! a message that is gone is [`Error::NotFound`](mailmove_core::Error). Details in the
//! `flag_update` module.
//!
//! # Removals and moves (the cut-over delta)
//! With `--sync-deletions`, [`MailSink::remove`](mailmove_core::MailSink::remove) unlinks the
//! copy whose source message is gone (found by its key in `cur/` or `new/`; one already gone is
//! removed), and [`MailSink::move_copy`](mailmove_core::MailSink::move_copy) moves the copy of a
//! message moved between folders at the source with one `rename(2)` from the old folder's `cur/`
//! (or `new/`) to the new folder's, instead of sending it again. The unique part, hence the key,
//! stays. Keyword letters are given the new folder's letters for the same keywords (its
//! `dovecot-keywords`), so no keyword changes meaning. Both fsync the directories before they
//! return (a move: the new folder first, so a crash can leave the message in both folders but
//! never in neither); nothing is ever replaced, and nothing else removed. A folder on another file
//! system is not moved into (the engine then sends the message). Details in the `relocate` module.
//!
//! # Subscriptions (Maildir++ only)
//! The root's `subscriptions` file lists one subscribed folder a line, named like its directory
//! without the leading dot (`Archive.2019`, `INBOX.Child`); Dovecot's version 2 files (a
//! `V<tab>2` header, segments separated by tabs) are read too and keep their version.
//! `list_folders` reports [`FolderInfo::subscribed`](mailmove_core::FolderInfo::subscribed) from
//! it (INBOX always subscribed), on the source and the sink side;
//! [`MailSink::subscribe`](mailmove_core::MailSink::subscribe) adds a missing line crash-safely
//! the way Dovecot does (new content written to `subscriptions.lock`, Dovecot's own lock file,
//! fsynced, renamed over the file, root fsynced). The fs layout keeps no subscriptions: folders
//! report `None` and the sink does not offer them. Courier's `courierimapsubscribed` file is not
//! read.
//!
//! # Delivery and durability
//! `append` writes `tmp/<unique>` (unique = `<secs>.M<micros>P<pid>Q<counter>R<random>.<host>`,
//! host with `/` → `\057`, `:` → `\072`), streams the body from
//! [`MessageBody::reader`](mailmove_core::MessageBody::reader) and sets the mtime; nothing is
//! synced yet. A body its reader spooled to a file on the same file system
//! ([`MessageBody::spool_path`](mailmove_core::MessageBody::spool_path)) becomes `tmp/<unique>`
//! by a hard link instead: its bytes are written once, and the flush's `syncfs` does not write
//! out a spool file that is deleted right after. Such a delivery keeps the spool file's
//! owner-only permissions (`0600`). [`MailSink::flush`](mailmove_core::MailSink::flush), the durability point, makes
//! the batch durable at once (one `syncfs`), renames each file into `cur/` — always `cur/`, so that
//! flags persist — as `<unique>,S=<size>:2,<flags>`, and fsyncs `cur/` and `new/`; what a crash
//! can lose at each point is in `delivery.rs` (a message is never in `cur/` unless whole and
//! durable). The flush is sealed ([`MailSink::begin_flush`](mailmove_core::MailSink::begin_flush)):
//! the files written until the call are its batch, so the engine writes the next batch to `tmp/`
//! while this one is synced and renamed. Folder creation, flag updates, removals and moves
//! (rename or unlink, fsync of the directories), `dovecot-keywords` and `subscriptions` updates (temporary file, fsync, rename)
//! are made durable at once. All file-system work runs in
//! `tokio::task::spawn_blocking`.
//!
//! # Reading is read-only
//! The source side never creates, renames or touches a file: listings and fetches only read
//! directories and files (the `subscriptions` file included) (a test compares a full listing with mtimes before and after). A store
//! opened with [`MaildirStore::open_source`] also refuses every sink operation.
//!
//! # Symbolic links and what is trusted
//! A maildir may be writable by someone other than the user running mailmove (root migrating its
//! users' mail), and that someone can plant symbolic links in it, or swap one in while a run goes
//! on. So everything below the root is reached through directory descriptors: directories are
//! opened relative to their parent with `O_NOFOLLOW | O_DIRECTORY`, files with `O_NOFOLLOW`
//! (and `O_NONBLOCK`, so a FIFO cannot hang a run), and the sink creates with `mkdirat`,
//! `O_CREAT | O_EXCL` and `renameat` relative to a descriptor. The kernel refuses a link at the
//! moment of use; there is no check-then-open window.
//! * **The root** named in the URL is trusted as given: it, and any directory above it, may be a
//!   symbolic link and is followed (on each operation). Whoever can replace it or a directory
//!   above it decides which tree is read or written: to migrate another user's maildir as root,
//!   give a path that user cannot change, or run mailmove as that user.
//! * **Source, below the root**: no link is followed. A message file that is a link (or a FIFO,
//!   socket or device) is skipped; a link where a folder directory would be (`.Evil`, or `Evil/`
//!   in the fs layout) is skipped, so its target is not a folder of this tree; a folder whose
//!   `cur` or `new` is a link or no directory, or whose directory cannot be read, is listed with
//!   [`FolderInfo::problem`](mailmove_core::FolderInfo::problem) set, so the run fails that
//!   folder by name and copies the others; a `dovecot-keywords` that is a link is not read (its
//!   letters then read as `$MaildirKeyword_x`). Everything skipped is reported through
//!   [`MailSource::warnings`](mailmove_core::MailSource::warnings), which reaches the run
//!   report. A message file, `cur/`/`new/` or folder directory replaced by a link after the
//!   listing is refused when it is read ([`Error::Refused`](mailmove_core::Error)), never read
//!   through.
//! * **Sink, below the root**: nothing is written through a link. A folder whose directory, a
//!   directory on its way below the root, or its `cur`, `new` or `tmp` is a link or no directory
//!   is refused by every sink operation (create, append, listing, flush) with
//!   [`Error::InvalidFolderName`](mailmove_core::Error) naming the folder and the path in the
//!   way; nothing is created or written outside the root. An existing `maildirfolder` marker is
//!   left alone (never opened), and a `dovecot-keywords` that is a link is replaced by the
//!   folder's own file (a rename), never written through.
//! * **Not detected: hard links.** A file hard-linked into a maildir is an ordinary file and is
//!   read as a message. Linux's `fs.protected_hardlinks` (on by default) stops users from
//!   hard-linking files they cannot write; keep it on when migrating as root.
//! * Unix only: the crate does not build elsewhere.
//!
//! # Concurrency with other clients
//! Directories are read `new/` first, then `cur/`, so a message moved from `new/` to `cur/`
//! meanwhile is seen at least once (and listed once). A client renaming files while a listing runs
//! can still hide a message from that one listing (readdir gives no guarantee for renamed entries);
//! the next run, which is idempotent, copies it.

// Safe access below the root rests on openat(2) and O_NOFOLLOW (see `fsat`).
#[cfg(not(unix))]
compile_error!("mailmove-maildir needs a Unix file system API (openat, O_NOFOLLOW)");

mod config;
mod delivery;
mod filename;
mod flag_update;
mod fsat;
mod keywords;
mod naming;
mod relocate;
mod scan;
mod sink;
mod source;
mod store;
mod subscriptions;
mod warning;

pub use config::{Layout, MaildirConfig, URL_KEYS};
pub use store::MaildirStore;
