//! A fresh database per test in the throw-away cluster of `scripts/postgres.sh` (MAILMOVE_TEST_PG).

#![allow(dead_code)]

use mailmove_fleet::Database;

/// The cluster's connection string; a test without it fails (CI starts the cluster).
pub fn cluster() -> String {
    std::env::var("MAILMOVE_TEST_PG").expect(
        "MAILMOVE_TEST_PG is not set: start the test cluster with scripts/postgres.sh (scripts/test.sh does)",
    )
}

/// A new, empty database with the fleet's schema; its name is unique to the test.
pub async fn fresh_database(test: &str) -> Database {
    let cluster = cluster();
    let admin = Database::new(&format!("{cluster} sslmode=disable"), None).unwrap();
    let client = admin.connect().await.unwrap();
    let name = format!("mm_{}_{}_{}", test, std::process::id(), rand_suffix());
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let url = format!("{} dbname={name} sslmode=disable", cluster.replace("dbname=postgres", ""));
    let database = Database::new(&url, None).unwrap();
    let mut client = database.connect().await.unwrap();
    mailmove_fleet::schema::migrate(&mut client).await.unwrap();
    database
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64
}
