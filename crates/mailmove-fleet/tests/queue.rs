//! The queue and its leases against a real PostgreSQL (scripts/postgres.sh): claims, fencing,
//! the reaper, poison accounts, idempotent enqueue, and the checkpoint store kit over the journal.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mailmove_core::checkpoint::{Checkpoint, CheckpointStore, IntentRow};
use mailmove_core::fingerprint::Fingerprint;
use mailmove_core::folder::FolderPath;
use mailmove_core::message::SourceKey;
use mailmove_core::{testkit, Error};
use mailmove_fleet::queue::{self, Finish, NewAccount, Progress, QueueOptions, RetrySelection};
use mailmove_fleet::{Claim, Database, LeaseClock, PgCheckpointStore};
use tokio_postgres::Client;

const TTL: Duration = Duration::from_secs(60);

fn accounts(n: usize) -> Vec<NewAccount> {
    (0..n)
        .map(|i| NewAccount {
            name: format!("user{i}"),
            source: format!("imap://user{i}@old.example"),
            destination: format!("imap://user{i}@new.example"),
            src_host: "old.example".into(),
            spec: serde_json::json!({ "source": format!("imap://user{i}@old.example") }),
        })
        .collect()
}

async fn enqueue(database: &Database, run: &str, n: usize, options: QueueOptions) -> (Client, i64) {
    let mut client = database.connect().await.unwrap();
    queue::enqueue(&mut client, run, &accounts(n), options).await.unwrap();
    let run_id = queue::run_id(&client, run).await.unwrap();
    (client, run_id)
}

/// Waits until the account's journal has not grown for 200 ms. The kit kills a copy by dropping
/// its future, but a checkpoint write already handed to a blocking thread still lands, and
/// journals (a killed process's would not): the next holder's compaction and the reaper must come
/// after it, as they would after a dead process.
async fn journal_quiet(client: &Client, account_id: i64) {
    let entries = || async {
        let row = client
            .query_one("SELECT count(*) FROM mm_ckpt_log WHERE account_id = $1", &[&account_id])
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let mut last = entries().await;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = entries().await;
        if now == last {
            return;
        }
        last = now;
    }
    panic!("the journal of account {account_id} kept growing for 10 s after its copy was killed");
}

/// Makes the account's lease expire long ago and runs the reaper until it takes the account: what
/// happens when its worker stops answering. Until then the killed holder's last requests may still
/// reach the server (a dropped future's queries go on) and hold the row or renew the lease, as a
/// dead worker's do until its connection closes: the reaper skips a locked row.
async fn expire_and_reap(client: &Client, account_id: i64) {
    for _ in 0..100 {
        client
            .execute(
                "UPDATE mm_account SET lease_expires_at = now() - interval '1 hour' WHERE account_id = $1",
                &[&account_id],
            )
            .await
            .unwrap();
        if queue::reap(client, Duration::from_secs(1)).await.unwrap() >= 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the expired lease of account {account_id} was never reaped (5 s)");
}

fn store_for(client: &Arc<Client>, claim: &Claim, dir: &std::path::Path) -> PgCheckpointStore {
    let clock = Arc::new(LeaseClock::new(Instant::now(), Duration::from_secs(3600)));
    PgCheckpointStore::new(client.clone(), claim.account_id, claim.epoch, clock, dir.to_path_buf())
}

#[tokio::test]
async fn migrating_twice_changes_nothing_and_a_newer_schema_is_refused() {
    let database = common::fresh_database("migrate").await;
    let mut client = database.connect().await.unwrap();
    assert_eq!(
        mailmove_fleet::schema::migrate(&mut client).await.unwrap(),
        mailmove_fleet::schema::SCHEMA_VERSION
    );
    mailmove_fleet::schema::check(&client).await.unwrap();
    client.execute("UPDATE mm_schema SET version = version + 1", &[]).await.unwrap();
    let err = mailmove_fleet::schema::migrate(&mut client).await.unwrap_err();
    assert!(matches!(err, mailmove_fleet::FleetError::NewerSchema { .. }), "{err}");
    assert!(mailmove_fleet::schema::check(&client).await.is_err());
}

#[tokio::test]
async fn enqueuing_the_same_file_again_adds_only_the_new_rows() {
    let database = common::fresh_database("enqueue").await;
    let mut client = database.connect().await.unwrap();
    let first = queue::enqueue(&mut client, "r", &accounts(30), QueueOptions::default()).await.unwrap();
    assert_eq!((first.added, first.already), (30, 0));
    let again = queue::enqueue(&mut client, "r", &accounts(45), QueueOptions::default()).await.unwrap();
    assert_eq!((again.added, again.already), (15, 30));
    let count: i64 = client.query_one("SELECT count(*) FROM mm_account", &[]).await.unwrap().get(0);
    assert_eq!(count, 45);
}

#[tokio::test]
async fn concurrent_claims_never_give_one_account_to_two_workers() {
    let database = common::fresh_database("claims").await;
    let (_client, run_id) = enqueue(&database, "r", 200, QueueOptions::default()).await;
    let mut claimers = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let database = database.clone();
        claimers.spawn(async move {
            let client = database.connect().await.unwrap();
            let mut mine = Vec::new();
            while let Some(claim) = queue::claim(&client, run_id, &format!("w{worker}"), TTL).await.unwrap() {
                assert_eq!(claim.epoch, 1);
                mine.push(claim.account_id);
            }
            mine
        });
    }
    let mut all = Vec::new();
    while let Some(mine) = claimers.join_next().await {
        all.extend(mine.unwrap());
    }
    all.sort();
    let claimed = all.len();
    all.dedup();
    assert_eq!((claimed, all.len()), (200, 200), "every account claimed once");
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_can_record_nothing_and_the_next_holder_sees_all_it_did() {
    let database = common::fresh_database("fencing").await;
    let dir = tempfile::tempdir().unwrap();
    let (client, run_id) = enqueue(&database, "r", 1, QueueOptions::default()).await;
    let zombie_client = Arc::new(database.connect().await.unwrap());
    let first = queue::claim(&client, run_id, "zombie", TTL).await.unwrap().unwrap();
    let zombie = store_for(&zombie_client, &first, &dir.path().join("zombie")).open("s", "d").await.unwrap();
    let inbox = FolderPath::parse("INBOX");
    let folder = zombie.folder(&inbox, Some(1), &inbox).await.unwrap();
    let intent = |n: u8| IntentRow::new(SourceKey::new(n.to_string()), Fingerprint::from_bytes([n; 32]), 10);
    zombie.record_intents(folder.id, vec![intent(1)]).await.unwrap();

    // The zombie stops answering; its lease expires and is reaped: refused from then on.
    expire_and_reap(&client, first.account_id).await;
    let refused = zombie.record_intents(folder.id, vec![intent(2)]).await.unwrap_err();
    assert!(matches!(refused, Error::LeaseLost { .. }), "{refused:?}");
    assert!(!queue::heartbeat(&client, &first, TTL, Progress::default()).await.unwrap());

    // Another worker takes over: epoch 2, and it sees the zombie's one durable intent.
    let second = queue::claim(&client, run_id, "heir", TTL).await.unwrap().unwrap();
    assert_eq!((second.account_id, second.epoch), (first.account_id, 2));
    let heir_client = Arc::new(database.connect().await.unwrap());
    let heir = store_for(&heir_client, &second, &dir.path().join("heir")).open("s", "d").await.unwrap();
    let state = heir.folder(&inbox, Some(1), &inbox).await.unwrap();
    assert_eq!(state.pending, 1, "the intent written under epoch 1 is there, the refused one is not");
    heir.record_intents(state.id, vec![intent(3)]).await.unwrap();
    // Still refused for the zombie, whose epoch is old now; its end of turn changes nothing.
    assert!(matches!(zombie.record_intents(folder.id, vec![intent(4)]).await, Err(Error::LeaseLost { .. })));
    assert!(!queue::finish(&client, &first, &Finish::Done { failed: 0, note: None }, Progress::default())
        .await
        .unwrap());
    assert!(queue::finish(&client, &second, &Finish::Done { failed: 0, note: None }, Progress::default())
        .await
        .unwrap());

    let epochs: Vec<i64> = client
        .query("SELECT epoch FROM mm_ckpt_log WHERE account_id = $1 ORDER BY seq", &[&first.account_id])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(epochs.windows(2).all(|w| w[0] <= w[1]) && epochs.contains(&2), "journal epochs {epochs:?}");
    let events: Vec<(i64, String)> = client
        .query(
            "SELECT epoch, event FROM mm_lease_log WHERE account_id = $1 ORDER BY id",
            &[&first.account_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        events,
        vec![(1, "claim".into()), (1, "expired".into()), (2, "claim".into()), (2, "complete -> done".into())]
    );
}

#[tokio::test]
async fn a_holder_that_could_not_renew_fences_itself_without_asking_the_database() {
    let database = common::fresh_database("selffence").await;
    let dir = tempfile::tempdir().unwrap();
    let (client, run_id) = enqueue(&database, "r", 1, QueueOptions::default()).await;
    let claim = queue::claim(&client, run_id, "w", TTL).await.unwrap().unwrap();
    // The fence lapses a second after the last renewal: long enough for the opening and the
    // folder's first write below on a loaded machine (each syncs SQLite and PostgreSQL).
    let fence = Duration::from_secs(1);
    let clock = Arc::new(LeaseClock::new(Instant::now(), fence));
    let client = Arc::new(client);
    let store = PgCheckpointStore::new(
        client.clone(),
        claim.account_id,
        claim.epoch,
        clock.clone(),
        dir.path().into(),
    );
    let checkpoint = store.open("s", "d").await.unwrap();
    let inbox = FolderPath::parse("INBOX");
    clock.renewed(Instant::now());
    let folder = checkpoint.folder(&inbox, None, &inbox).await.unwrap();
    tokio::time::sleep(fence + Duration::from_millis(200)).await;
    // The database would still take it (the lease is valid there): the worker refuses first.
    assert!(queue::heartbeat(&client, &claim, TTL, Progress::default()).await.unwrap());
    let intent = IntentRow::new(SourceKey::new("1"), Fingerprint::from_bytes([1; 32]), 10);
    assert!(matches!(checkpoint.record_intents(folder.id, vec![intent]).await, Err(Error::LeaseLost { .. })));
}

#[tokio::test]
async fn an_account_whose_workers_keep_dying_ends_failed_as_crash_loop() {
    let database = common::fresh_database("poison").await;
    let (client, run_id) = enqueue(&database, "r", 1, QueueOptions { priority: 0, max_attempts: 2 }).await;
    for attempt in 1..=2 {
        let claim = queue::claim(&client, run_id, "w", TTL).await.unwrap().expect("claimable");
        assert_eq!(claim.attempts, attempt);
        expire_and_reap(&client, claim.account_id).await;
    }
    assert!(queue::claim(&client, run_id, "w", TTL).await.unwrap().is_none());
    let row = client.query_one("SELECT state, error_class FROM mm_account", &[]).await.unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, Option<String>>(1)),
        ("failed".into(), Some("crash_loop".into()))
    );
    // `retry` gives it another chance.
    assert_eq!(queue::retry(&client, "r", &RetrySelection::default()).await.unwrap(), 1);
    assert!(queue::claim(&client, run_id, "w", TTL).await.unwrap().is_some());
}

#[tokio::test]
async fn a_paused_run_is_not_claimed_and_a_cancelled_lease_stops_its_heartbeat() {
    let database = common::fresh_database("pause").await;
    let (client, run_id) = enqueue(&database, "r", 3, QueueOptions::default()).await;
    let held = queue::claim(&client, run_id, "w", TTL).await.unwrap().unwrap();
    queue::set_paused(&client, "r", true).await.unwrap();
    assert!(queue::claim(&client, run_id, "w", TTL).await.unwrap().is_none());
    queue::set_paused(&client, "r", false).await.unwrap();
    assert_eq!(queue::cancel(&client, "r").await.unwrap(), 3);
    assert!(!queue::heartbeat(&client, &held, TTL, Progress::default()).await.unwrap());
    assert!(queue::claim(&client, run_id, "w", TTL).await.unwrap().is_none());
}

#[tokio::test]
async fn a_transient_failure_waits_its_backoff_and_a_permanent_one_stays_failed() {
    let database = common::fresh_database("finish").await;
    let (client, run_id) = enqueue(&database, "r", 2, QueueOptions::default()).await;
    let a = queue::claim(&client, run_id, "w", TTL).await.unwrap().unwrap();
    let b = queue::claim(&client, run_id, "w", TTL).await.unwrap().unwrap();
    let retry =
        Finish::Retry { class: "connection".into(), error: "cut".into(), backoff: Duration::from_secs(3600) };
    assert!(queue::finish(&client, &a, &retry, Progress::default()).await.unwrap());
    let auth = Finish::Failed { class: "auth".into(), error: "AUTHENTICATIONFAILED".into() };
    assert!(queue::finish(&client, &b, &auth, Progress::default()).await.unwrap());
    assert!(queue::claim(&client, run_id, "w", TTL).await.unwrap().is_none(), "a waits an hour, b failed");
    let states: Vec<(String, String)> = client
        .query("SELECT state, error_class FROM mm_account ORDER BY account_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(states, vec![("pending".into(), "connection".into()), ("failed".into(), "auth".into())]);
}

/// Every open is a new worker taking the account over after the last one's lease expired;
/// with `compact`, the last holder first compacted the journal to a snapshot.
struct TakeoverStore {
    database: Database,
    client: Client,
    run_id: i64,
    dir: tempfile::TempDir,
    held: std::sync::Mutex<Option<Claim>>,
    compact: bool,
    last: tokio::sync::Mutex<Option<PgCheckpointStore>>,
    compactions: std::sync::atomic::AtomicU32,
}

impl TakeoverStore {
    async fn new(test: &str) -> Self {
        let database = common::fresh_database(test).await;
        let (client, run_id) =
            enqueue(&database, "r", 1, QueueOptions { priority: 0, max_attempts: 100 }).await;
        TakeoverStore {
            database,
            client,
            run_id,
            dir: tempfile::tempdir().unwrap(),
            held: Default::default(),
            compact: false,
            last: Default::default(),
            compactions: Default::default(),
        }
    }

    async fn compacting(test: &str) -> Self {
        TakeoverStore { compact: true, ..TakeoverStore::new(test).await }
    }
}

#[async_trait]
impl CheckpointStore for TakeoverStore {
    async fn open(&self, source: &str, destination: &str) -> mailmove_core::Result<Checkpoint> {
        let previous_account = self.held.lock().unwrap().as_ref().map(|claim| claim.account_id);
        if let Some(account_id) = previous_account {
            journal_quiet(&self.client, account_id).await;
        }
        if let (true, Some(last)) = (self.compact, self.last.lock().await.take()) {
            let mut client = self.database.connect().await.unwrap();
            if let Some(done) = last.compact(&mut client, 1).await.unwrap() {
                assert!(done.after >= 1 && done.before >= 1, "{done:?}");
                self.compactions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let previous = self.held.lock().unwrap().take();
        if let Some(previous) = previous {
            expire_and_reap(&self.client, previous.account_id).await;
        }
        let claim = queue::claim(&self.client, self.run_id, "kit", TTL).await.unwrap().expect("claimable");
        let client = Arc::new(self.database.connect().await.unwrap());
        let store = store_for(&client, &claim, self.dir.path());
        *self.held.lock().unwrap() = Some(claim);
        let checkpoint = store.open(source, destination).await?;
        *self.last.lock().await = Some(store);
        Ok(checkpoint)
    }
}

#[tokio::test]
async fn the_postgresql_store_passes_the_checkpoint_store_kit() {
    let store = TakeoverStore::new("kit").await;
    testkit::check_checkpoint_store_keeps_every_write(&store).await.unwrap();
    let epoch: i64 = store.client.query_one("SELECT lease_epoch FROM mm_account", &[]).await.unwrap().get(0);
    assert_eq!(epoch, 3, "three opens, three holders");
    testkit::check_checkpoint_store_resumes_a_killed_copy(|| async { Ok(TakeoverStore::new("kill").await) })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_source_host_at_its_limit_is_skipped_until_one_of_its_accounts_ends() {
    let database = common::fresh_database("hostcap").await;
    let mut client = database.connect().await.unwrap();
    let mut rows = accounts(6);
    for (index, row) in rows.iter_mut().enumerate() {
        row.src_host = if index < 4 { "imap.gmail.com".into() } else { "old.example".into() };
    }
    queue::enqueue(&mut client, "r", &rows, QueueOptions::default()).await.unwrap();
    let run_id = queue::run_id(&client, "r").await.unwrap();
    queue::set_host_limit(&client, "r", "IMAP.gmail.com", Some(2)).await.unwrap();
    let mut held = Vec::new();
    while let Some(claim) = queue::claim(&client, run_id, "w", TTL).await.unwrap() {
        held.push(claim);
    }
    let hosts: Vec<String> = held.iter().map(|c| c.source.clone()).collect();
    assert_eq!(held.len(), 4, "two of the limited host, both of the other: {hosts:?}");
    let done = Finish::Done { failed: 0, note: None };
    assert!(queue::finish(&client, &held[0], &done, Progress::default()).await.unwrap());
    let next = queue::claim(&client, run_id, "w", TTL).await.unwrap().expect("a place came free");
    assert!(next.source.contains("user2@"), "the next of the limited host: {}", next.source);
    assert!(queue::claim(&client, run_id, "w", TTL).await.unwrap().is_none());
    queue::set_host_limit(&client, "r", "imap.gmail.com", None).await.unwrap();
    assert!(queue::claim(&client, run_id, "w", TTL).await.unwrap().is_some(), "limit lifted");
}

#[tokio::test]
async fn a_database_of_schema_1_is_upgraded_in_place() {
    let database = common::fresh_database("upgrade").await;
    let mut client = database.connect().await.unwrap();
    // Back to version 1, with an account in it.
    client
        .batch_execute(
            "DROP TABLE mm_host_limit; DROP INDEX mm_account_leased_host; UPDATE mm_schema SET version = 1",
        )
        .await
        .unwrap();
    queue::enqueue(&mut client, "r", &accounts(1), QueueOptions::default()).await.unwrap();
    assert!(mailmove_fleet::schema::check(&client).await.is_err(), "an old schema is refused until init");
    assert_eq!(mailmove_fleet::schema::migrate(&mut client).await.unwrap(), 1);
    mailmove_fleet::schema::check(&client).await.unwrap();
    let run_id = queue::run_id(&client, "r").await.unwrap();
    assert!(
        queue::claim(&client, run_id, "w", TTL).await.unwrap().is_some(),
        "the account survived the upgrade"
    );
}

#[tokio::test]
async fn a_journal_compacted_by_each_holder_before_the_next_passes_the_kit() {
    let store = TakeoverStore::compacting("kitcompact").await;
    testkit::check_checkpoint_store_keeps_every_write(&store).await.unwrap();
    assert_eq!(store.compactions.load(std::sync::atomic::Ordering::SeqCst), 2);
    let entries: i64 = store.client.query_one("SELECT count(*) FROM mm_ckpt_log", &[]).await.unwrap().get(0);
    assert!(entries <= 3, "the journal is the last snapshot and what followed it: {entries} entries");
    testkit::check_checkpoint_store_resumes_a_killed_copy(|| async {
        Ok(TakeoverStore::compacting("killcompact").await)
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_holder_that_lost_its_lease_cannot_compact_the_journal() {
    let database = common::fresh_database("compactfence").await;
    let dir = tempfile::tempdir().unwrap();
    let (client, run_id) = enqueue(&database, "r", 1, QueueOptions::default()).await;
    let claim = queue::claim(&client, run_id, "w", TTL).await.unwrap().unwrap();
    let store = store_for(&Arc::new(database.connect().await.unwrap()), &claim, dir.path());
    let checkpoint = store.open("s", "d").await.unwrap();
    let inbox = FolderPath::parse("INBOX");
    checkpoint.folder(&inbox, Some(1), &inbox).await.unwrap();
    expire_and_reap(&client, claim.account_id).await;
    let refused = store.compact(&mut database.connect().await.unwrap(), 1).await.unwrap_err();
    assert!(matches!(refused, mailmove_fleet::FleetError::Core(Error::LeaseLost { .. })), "{refused}");
    let entries: i64 = client.query_one("SELECT count(*) FROM mm_ckpt_log", &[]).await.unwrap().get(0);
    assert_eq!(entries, 1, "the journal is as it was");
}
