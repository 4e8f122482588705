//! The destination's daily upload allowance (Gmail's, issue 15), honoured across runs: the bytes
//! appended in the current 24-hour window are kept in `meta` (key `upload_window`, value
//! `START_SECS BYTES`), so a second run the same day knows what the first one spent.

use rusqlite::OptionalExtension;

use super::journal::values;

use super::Checkpoint;
use crate::error::Result;

/// The length of an allowance's window.
const UPLOAD_WINDOW_SECS: i64 = 86_400;

const KEY: &str = "upload_window";

impl Checkpoint {
    /// Reserves `bytes` of an allowance of `allowance` bytes a day at `now` (Unix seconds):
    /// `Ok(None)` when they fit the current window (and are counted in it), `Ok(Some(when))`
    /// with the Unix second the window ends when they do not. A window that nothing was spent in
    /// takes any one reservation, however large (a message larger than the allowance still
    /// goes, alone).
    pub async fn reserve_upload(&self, bytes: u64, allowance: u64, now: i64) -> Result<Option<i64>> {
        self.write(move |write| {
            let stored: Option<String> = write
                .read()
                .query_row("SELECT value FROM meta WHERE key = ?1", [KEY], |row| row.get(0))
                .optional()?;
            let (mut start, mut spent) = stored
                .as_deref()
                .and_then(|value| value.split_once(' '))
                .and_then(|(start, spent)| Some((start.parse::<i64>().ok()?, spent.parse::<u64>().ok()?)))
                .unwrap_or((now, 0));
            if now >= start + UPLOAD_WINDOW_SECS || now < start {
                (start, spent) = (now, 0);
            }
            if spent > 0 && spent.saturating_add(bytes) > allowance {
                return Ok(Some(start + UPLOAD_WINDOW_SECS));
            }
            write.execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                &values![KEY.to_string(), format!("{start} {}", spent.saturating_add(bytes))],
            )?;
            Ok(None)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_allowance_is_spent_across_runs_and_whole_again_a_day_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let now = 1_800_000_000;
        {
            let checkpoint = Checkpoint::open(&path, "src", "dst").unwrap();
            assert_eq!(checkpoint.reserve_upload(600, 1_000, now).await.unwrap(), None);
            assert_eq!(checkpoint.reserve_upload(300, 1_000, now + 10).await.unwrap(), None);
        }
        // The next run, the same day: 100 bytes left.
        let checkpoint = Checkpoint::open(&path, "src", "dst").unwrap();
        assert_eq!(
            checkpoint.reserve_upload(200, 1_000, now + 60).await.unwrap(),
            Some(now + UPLOAD_WINDOW_SECS)
        );
        assert_eq!(checkpoint.reserve_upload(100, 1_000, now + 60).await.unwrap(), None);
        // A day later, whole again; one message larger than the allowance goes alone.
        let later = now + UPLOAD_WINDOW_SECS;
        assert_eq!(checkpoint.reserve_upload(5_000, 1_000, later).await.unwrap(), None);
        assert_eq!(
            checkpoint.reserve_upload(1, 1_000, later).await.unwrap(),
            Some(later + UPLOAD_WINDOW_SECS)
        );
    }
}
