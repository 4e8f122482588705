//! `mailmove fleet verify`: each done account's destination against its checkpoint (rebuilt
//! read-only from the journal): copies the checkpoint vouches for that are missing, and copies
//! beyond what it accounts for.
//!
//! An account taken over from a worker that was frozen (not killed) mid-write can hold one
//! extra copy: the frozen worker's last durability step (an IMAP APPEND already sent, a Maildir
//! rename) finishing after the new holder copied the same message. The lease bounds that
//! window and this check closes it: with `--remove-duplicates` such copies are removed, in
//! accounts that were taken over only (elsewhere an extra copy is the destination's own, and
//! only reported).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use mailmove::core::checkpoint::{CheckpointStore, LISTING_BATCH};
use mailmove::registry::{self, Side};
use mailmove_fleet::queue::Claim;
use mailmove_fleet::{queue, Database, LeaseClock, PgCheckpointStore};
use serde::Serialize;

use super::output::json_line;
use super::terminal::terminal_safe;
use super::{EXIT_INCOMPLETE, EXIT_OK};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The run's name.
    #[arg(long)]
    pub run: String,
    /// Only accounts whose lease expired at least once (taken over from a worker).
    #[arg(long)]
    pub taken_over_only: bool,
    /// Remove the copies beyond what the checkpoint accounts for, in accounts that were taken
    /// over (see the command's description). A destination's own duplicates, older than the
    /// migration, count as such copies too: use it on destinations the migration filled.
    #[arg(long)]
    pub remove_duplicates: bool,
    /// Where the rebuilt checkpoints live while an account is checked, in a directory of the
    /// run's own that is removed at its end (default: the temporary directory).
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One account's verdict.
#[derive(Debug, Default, Serialize)]
pub struct AccountCheck {
    pub name: String,
    pub taken_over: bool,
    /// Copies the destination holds in the account's folders.
    pub listed: u64,
    /// Copies the checkpoint vouches for (copied or matched).
    pub recorded: u64,
    /// Recorded copies the destination does not hold.
    pub missing: u64,
    /// Extra copies of recorded messages.
    pub duplicates: u64,
    /// Of those, removed.
    pub removed: u64,
    /// Other copies no record explains (the destination's own messages).
    pub others: u64,
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct FleetVerifySummary {
    pub accounts: usize,
    pub exact: usize,
    pub missing: u64,
    pub duplicates: u64,
    pub removed: u64,
    pub errors: usize,
    pub rows: Vec<AccountCheck>,
}

pub async fn run(database: &Database, args: VerifyArgs) -> anyhow::Result<u8> {
    let client = Arc::new(database.connect().await?);
    mailmove_fleet::schema::check(&client).await?;
    let run_id = queue::run_id(&client, &args.run).await?;
    let rows = client
        .query(
            "SELECT a.account_id, a.name, a.source, a.destination, a.spec, a.pass,
                    EXISTS (SELECT 1 FROM mm_lease_log l WHERE l.account_id = a.account_id AND l.event = 'expired')
               FROM mm_account a WHERE a.run_id = $1 AND a.state = 'done' ORDER BY a.account_id",
            &[&run_id],
        )
        .await?;
    // A directory of this run's own inside the one given (or the temporary directory), removed
    // when the run ends: never the given directory itself, never another run's files.
    let scratch = tempfile::Builder::new()
        .prefix("mailmove-fleet-verify-")
        .tempdir_in(args.scratch.clone().unwrap_or_else(std::env::temp_dir))?;
    let mut summary = FleetVerifySummary::default();
    for row in rows {
        let taken_over: bool = row.get(6);
        if args.taken_over_only && !taken_over {
            continue;
        }
        // Epoch 0 is never a lease's: any write to the journal would be refused.
        let claim = Claim {
            account_id: row.get(0),
            epoch: 0,
            name: row.get(1),
            source: row.get(2),
            destination: row.get(3),
            spec: row.get(4),
            pass: row.get(5),
            attempts: 0,
            owner: String::new(),
            bytes_done_before: 0,
        };
        let mut check = AccountCheck { name: claim.name.clone(), taken_over, ..AccountCheck::default() };
        let remove = args.remove_duplicates && taken_over;
        if let Err(error) = check_account(&client, &claim, scratch.path(), remove, &mut check).await {
            check.error = Some(super::output::error_chain(&error));
        }
        summary.accounts += 1;
        summary.missing += check.missing;
        summary.duplicates += check.duplicates;
        summary.removed += check.removed;
        summary.errors += usize::from(check.error.is_some());
        if check.error.is_none() && check.missing == 0 && check.duplicates == check.removed {
            summary.exact += 1;
        }
        summary.rows.push(check);
    }
    drop(scratch);
    if args.json {
        json_line(&summary);
    } else {
        for row in &summary.rows {
            eprintln!(
                "{}\t{} copies, {} recorded\tmissing {}\tduplicates {} (removed {})\tothers {}{}{}",
                terminal_safe(&row.name),
                row.listed,
                row.recorded,
                row.missing,
                row.duplicates,
                row.removed,
                row.others,
                if row.taken_over { "\ttaken over" } else { "" },
                row.error.as_deref().map(|e| format!("\terror: {}", terminal_safe(e))).unwrap_or_default()
            );
        }
        eprintln!(
            "mailmove: {} accounts verified, {} exact; {} copies missing, {} duplicates ({} removed), {} errors",
            summary.accounts, summary.exact, summary.missing, summary.duplicates, summary.removed, summary.errors
        );
    }
    Ok(if summary.exact == summary.accounts { EXIT_OK } else { EXIT_INCOMPLETE })
}

async fn check_account(
    client: &Arc<mailmove_fleet::tokio_postgres::Client>,
    claim: &Claim,
    scratch: &std::path::Path,
    remove: bool,
    check: &mut AccountCheck,
) -> anyhow::Result<()> {
    let account = super::fleet_worker::account_of(claim).map_err(|e| anyhow::anyhow!(e))?;
    let source = registry::open_source(&claim.source, &account.credentials(Side::Source)?).await?;
    let sink = registry::open_sink(&claim.destination, &account.credentials(Side::Destination)?).await?;
    let clock = Arc::new(LeaseClock::new(Instant::now(), Duration::from_secs(u32::MAX as u64)));
    let store = PgCheckpointStore::new(
        client.clone(),
        claim.account_id,
        claim.epoch,
        clock,
        scratch.join(claim.account_id.to_string()),
    );
    let checkpoint = store.open(&source.identity(), &sink.identity()).await?;
    for folder in checkpoint.known_folders().await? {
        let done = checkpoint.done_fingerprint_counts(folder.id).await?;
        let recorded: u64 = done.values().sum();
        let listing = checkpoint.start_destination_listing(folder.id).await?;
        let mut listed = 0;
        let mut batch = Vec::with_capacity(LISTING_BATCH);
        let mut copies = sink.list_existing(&folder.destination);
        while let Some(copy) = copies.next().await {
            let copy = copy?;
            listed += 1;
            batch.push((copy.fingerprint, copy.dest_key));
            if batch.len() >= LISTING_BATCH {
                listing.add(std::mem::take(&mut batch)).await?;
            }
        }
        drop(copies);
        listing.add(batch).await?;
        let unexplained = listing.unexplained().await?;
        let explained = listed - unexplained.len() as u64;
        check.listed += listed;
        check.recorded += recorded;
        check.missing += recorded.saturating_sub(explained);
        for (fingerprint, dest_key) in unexplained {
            if !done.contains_key(&fingerprint) {
                check.others += 1;
                continue;
            }
            check.duplicates += 1;
            if let (true, Some(dest_key)) = (remove, dest_key) {
                sink.remove(&folder.destination, &dest_key).await?;
                check.removed += 1;
            }
        }
        if remove && check.removed > 0 {
            sink.flush(&folder.destination).await?;
        }
    }
    Ok(())
}
