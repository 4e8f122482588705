//! The fleet's database connection: TLS required and verified unless the URL says
//! `sslmode=disable`, against the TLS-enabled test cluster of scripts/postgres.sh.

mod common;

use mailmove_fleet::Database;

fn ca() -> std::path::PathBuf {
    std::env::var("MAILMOVE_TEST_PG_CA")
        .expect("MAILMOVE_TEST_PG_CA is not set: start the test cluster with scripts/postgres.sh")
        .into()
}

async fn uses_tls(database: &Database) -> bool {
    let client = database.connect().await.unwrap();
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn tls_is_required_and_verified_by_default() {
    let cluster = common::cluster();
    // No sslmode: TLS, verified against the given CA.
    assert!(uses_tls(&Database::new(&cluster, Some(&ca())).unwrap()).await);
    // `prefer` is not taken as leave to fall back to plaintext: it is TLS too.
    assert!(uses_tls(&Database::new(&format!("{cluster} sslmode=prefer"), Some(&ca())).unwrap()).await);
    // Without the CA the test certificate is not trusted: no connection at all.
    let refused = Database::new(&cluster, None).unwrap().connect().await.unwrap_err();
    let chain = format!("{refused} {:?}", std::error::Error::source(&refused));
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    // Plaintext only when said in words.
    assert!(!uses_tls(&Database::new(&format!("{cluster} sslmode=disable"), None).unwrap()).await);
}

#[tokio::test]
async fn a_connection_string_with_a_password_never_shows_in_errors_or_debug() {
    let secret = "s3cr3t-pw";
    let database =
        Database::new(&format!("host=127.0.0.1 port=1 user=joe password={secret} sslmode=disable"), None)
            .unwrap();
    assert!(!format!("{database:?}").contains(secret));
    let error = database.connect().await.unwrap_err();
    let chain = format!("{error} {error:?}");
    assert!(!chain.contains(secret), "{chain}");
    let unparsable = Database::new(&format!("host=x password={secret} bogus=1"), None).unwrap_err();
    assert!(!format!("{unparsable} {unparsable:?}").contains(secret));
}
