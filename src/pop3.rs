//! POP3: everything of [`mailmove_pop3`], plus the `--delete-after` sequence for programs that
//! embed mailmove ([`open`], [`delete_copied`]).
//!
//! POP3 has no folders to copy into, so moving a maildrop means deleting from the server what
//! arrived. That is safe only for messages that are durable at the destination *and* recorded in
//! the copy's checkpoint, and it needs a source opened with deletion allowed. Both rules live in
//! this module, so that the `mailmove` command and an embedding program run the same sequence
//! (the example is at [`delete_copied`]).

use std::path::Path;

pub use mailmove_pop3::*;

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{RunOutcome, RunReport};
use mailmove_core::{FolderPath, MailSource, Result};

use crate::registry::Credentials;

/// Opens a POP3 URL (`pop3://` or `pop3s://`) as its concrete source type. With `delete_after`,
/// [`delete_copied`] (and [`Pop3Source::delete_keys`]) may remove messages from the server;
/// without it they refuse, whatever they are given.
///
/// # Errors
/// As [`registry::open_source`](crate::registry::open_source).
pub async fn open(url: &str, credentials: &Credentials, delete_after: bool) -> Result<Pop3Source> {
    Pop3Source::connect(credentials.apply(Pop3Config::from_url(url)?.with_delete_after(delete_after))).await
}

/// What [`delete_copied`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DeleteReport {
    /// Whether deletion was attempted: `false` after a paused run, which deletes nothing, so that
    /// stopping a run never also changes the server.
    pub attempted: bool,
    /// The messages the checkpoint records as durable at the destination: the most that may go.
    pub durable: usize,
    /// The messages deleted from the server (fewer than `durable` when some were gone already).
    pub deleted: usize,
}

/// Deletes from the POP3 server every message that `run` made durable at its destination and
/// recorded in its checkpoint at `checkpoint_path`, and nothing else. Call it after the copy,
/// with the source the copy read from (opened by [`open`] with deletion allowed) and the report
/// the copy returned. A paused run deletes nothing ([`DeleteReport::attempted`] is `false`).
///
/// # Contract
/// The checkpoint is the copy's own: it is opened for the source's identity and the report's
/// destination, so a checkpoint of another job is refused rather than read.
///
/// # Errors
/// The checkpoint's errors (it cannot be opened, or belongs to another job);
/// [`Error::Config`](crate::Error::Config) when the source was opened without deletion allowed;
/// connection errors, after which nothing was deleted unless the server confirmed it (see
/// [`Pop3Source::delete_keys`]).
///
/// # Example
/// ```no_run
/// # async fn example() -> mailmove::Result<()> {
/// use std::sync::Arc;
/// use mailmove::core::engine::Copier;
/// use mailmove::registry::{open_sink, Credentials, Side};
///
/// let checkpoint = std::path::Path::new("/var/lib/myapp/ana.sqlite");
/// let credentials = Credentials::from_env(Side::Source);
/// // Deletion allowed: the same connection first reads, then deletes.
/// let pop3 = Arc::new(mailmove::pop3::open("pop3s://ana@pop.example.org/", &credentials, true).await?);
/// let sink = open_sink("maildir:/srv/mail/ana/Maildir", &Credentials::default()).await?;
/// let run = Copier::from_arcs(pop3.clone(), sink.into()).checkpoint_path(checkpoint).run().await?;
/// let deleted = mailmove::pop3::delete_copied(&pop3, checkpoint, &run).await?;
/// println!("{} copied, {} deleted from the server", run.copied, deleted.deleted);
/// # Ok(()) }
/// ```
pub async fn delete_copied(
    source: &Pop3Source,
    checkpoint_path: &Path,
    run: &RunReport,
) -> Result<DeleteReport> {
    if run.outcome == RunOutcome::Paused {
        return Ok(DeleteReport::default());
    }
    let checkpoint = Checkpoint::open(checkpoint_path, &source.identity(), &run.destination)?;
    // A maildrop is one folder: its INBOX.
    let keys = checkpoint.done_keys(&FolderPath::inbox()).await?;
    let deleted = source.delete_keys(&keys).await?;
    Ok(DeleteReport { attempted: true, durable: keys.len(), deleted })
}
