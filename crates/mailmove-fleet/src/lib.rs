//! The fleet of mailmove: many workers, on any number of machines, migrating the accounts of
//! one PostgreSQL queue, each account held by one worker at a time under a lease whose epoch
//! fences every checkpoint write.
//!
//! # Design (see `shared/design/FLEET.md`, which this follows, and where it departs, why)
//! * **Queue and leases** ([`queue`]): `mm_account` rows claimed with `FOR UPDATE SKIP LOCKED`,
//!   each claim raising the row's `lease_epoch`; heartbeats extend the lease and carry
//!   progress; any worker reaps leases expired for longer than a grace; an account claimed
//!   more than `max_attempts` times without finishing ends `failed` as `crash_loop`, never
//!   loops. Every lease change is written to `mm_lease_log` by the statement that makes it.
//! * **Checkpoints** ([`pg_store`]): not a second implementation of the checkpoint's tables in
//!   PostgreSQL, but the same SQLite checkpoint, rebuilt on the worker from a journal of its
//!   write transactions kept in `mm_ckpt_log`
//!   ([`mailmove_core::checkpoint::CheckpointJournal`]). The rules of exactly-once stay
//!   written once; the database sees one insert per engine batch; reconciliation's temporary
//!   listings stay on the worker's disk (no PostgreSQL temporary tables, so PgBouncer in
//!   transaction mode works). The price: the per-message state is JSON in the journal, not
//!   rows an operator can query, and a takeover replays the account's journal.
//! * **Fencing**: a journal row is inserted by a statement that locks the account row `FOR
//!   SHARE` under the holder's epoch, so a worker that lost its lease (paused, partitioned,
//!   reaped) can record nothing once another's claim committed; and a holder that could not
//!   renew for the self-fence time refuses its own writes ([`lease`]). An IMAP destination
//!   cannot check a fencing token: an append already sent when the lease is lost can still
//!   land. Its intent was journaled first, so the next holder reconciles it by fingerprint:
//!   the lease bounds the race, reconciliation closes it.
//! * **Secrets** are never in the database: an account's row names the environment variables
//!   or files that hold them (the batch CSV format), and each worker resolves them locally.
//!
//! The application supplies the copy itself ([`worker::AccountRunner`]): this crate knows no
//! backend. `mailmove fleet` is that application.
//!
//! # Embedding a worker
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use mailmove_core::checkpoint::CheckpointStore;
//! use mailmove_core::engine::Copier;
//! use mailmove_core::memory::MemoryStore;
//! use mailmove_fleet::{queue, run_worker, AccountRunner, Claim, Database, Finish, LeaseTimings};
//! use mailmove_fleet::{NewAccount, PgCheckpointStore, Progress, QueueOptions, WorkerOptions};
//!
//! /// Copies each account between stores the application opens from the claim's spec.
//! struct Runner;
//!
//! #[async_trait::async_trait]
//! impl AccountRunner for Runner {
//!     async fn run(&self, claim: &Claim, store: &PgCheckpointStore, _progress: Arc<Mutex<Progress>>) -> Finish {
//!         let (source, sink) = (MemoryStore::new(&claim.source), MemoryStore::new(&claim.destination));
//!         let checkpoint = match store.open(&claim.source, &claim.destination).await {
//!             Ok(checkpoint) => checkpoint,
//!             Err(error) => return Finish::Retry { class: error.kind().into(), error: error.to_string(), backoff: std::time::Duration::from_secs(30) },
//!         };
//!         match Copier::new(source, sink).checkpoint(checkpoint).run().await {
//!             Ok(report) => Finish::Done { failed: report.failed as i64, note: None },
//!             Err(error) => Finish::Failed { class: error.kind().into(), error: error.to_string() },
//!         }
//!     }
//! }
//!
//! # async fn example() -> mailmove_fleet::Result<()> {
//! let database = Database::new("host=db.internal user=mailmove dbname=migration", None)?;
//! let mut client = database.connect().await?;
//! mailmove_fleet::schema::migrate(&mut client).await?;
//! let account = NewAccount {
//!     name: "ana".into(),
//!     source: "imaps://ana@old.example".into(),
//!     destination: "imaps://ana@new.example".into(),
//!     src_host: "old.example".into(),
//!     spec: serde_json::json!({}),
//! };
//! queue::enqueue(&mut client, "uni-2026", &[account], QueueOptions::default()).await?;
//! let options = WorkerOptions {
//!     worker_id: "worker-1".into(),
//!     run: Some("uni-2026".into()),
//!     concurrency: 8,
//!     timings: LeaseTimings::default(),
//!     scratch: std::env::temp_dir().join("fleet"),
//!     poll: std::time::Duration::from_secs(2),
//!     until_done: true,
//!     compact: true,
//! };
//! let summary = run_worker(&database, Arc::new(Runner), options, std::future::pending()).await?;
//! println!("{} accounts done", summary.done);
//! # Ok(()) }
//! ```

pub mod connect;
pub mod error;
pub mod lease;
pub mod pg_store;
pub mod queue;
pub mod schema;
pub mod status;
pub mod worker;

pub use connect::Database;
pub use error::{FleetError, Result};
pub use lease::{LeaseClock, LeaseTimings};
pub use pg_store::{Compaction, PgCheckpointStore, PgJournal};
pub use queue::{Claim, Finish, NewAccount, Progress, QueueOptions};
/// The PostgreSQL client this crate speaks through (its `Client` appears in the API).
pub use tokio_postgres;
pub use worker::{run_worker, AccountRunner, WorkerOptions, WorkerSummary};
