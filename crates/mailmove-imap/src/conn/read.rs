//! Reading from the server: bytes into the connection's buffer under the response's time rule,
//! lines, literals (in memory or spooled), whole responses; and, while a long literal arrives,
//! fewer wake-ups: the socket's receive low-water mark (`SO_RCVLOWAT`) is raised to what the
//! server is still sure to send, so that a read is woken once 64 KiB are there rather than for
//! every piece the server writes. An IMAP → IMAP copy of 3,000 messages (483 MiB) was woken
//! ~30,000 times without it and ~12,000 with it, for 6–9 % less CPU.
//!
//! The mark must never exceed what is still to come, or a read waits for bytes that never come:
//! it is taken from the literal's announced length less what the TLS layers may hold while a
//! read waits ([`Transport::held_above_socket`](crate::stream::Transport::held_above_socket)),
//! and lowered before the literal's last bytes and after it. A read whose time runs out with the mark up
//! lowers it and reads what is there, so a slow server is timed by what it sent.

use std::time::Duration;

use bytes::Buf;
use mailmove_core::{Error, Result};
use mailmove_net::deadline::ResponseClock;
use tokio::io::AsyncReadExt;

use super::Conn;
use crate::errors;
use crate::literal::{literal_length, LiteralPolicy, MAX_DISCARDED_LITERAL};
use crate::nul_bytes::StrayScanner;
use crate::wire::{Frame, LiteralSlot, Spooled};

/// Longest response line (without literals) we accept: a SEARCH of a million UIDs fits.
const MAX_LINE: usize = 64 * 1024 * 1024;
/// Literals up to this size stay in the frame even when the spool threshold is lower.
const MIN_INLINE_LITERAL: usize = 64 * 1024;
/// Room kept after an in-memory literal for the rest of its response line (`)`, CRLF, or the
/// FETCH items a server sends after the body).
const REST_OF_LINE: usize = 256;
/// While a long literal arrives, a read is woken only once this much is queued on the socket
/// (`SO_RCVLOWAT`) instead of for every piece the server writes (Dovecot writes ~7 KB at a
/// time): one read fills the 64 KiB buffers at once.
const LITERAL_LOW_WATER: usize = 64 * 1024;
/// Below this much still sure to come, a mark saves too few wake-ups to pay for setting it.
const MIN_LOW_WATER: usize = 8 * 1024;
/// How long a read waits on after its time ran out with a low-water mark up: the mark is lowered,
/// and bytes queued below it are read at once.
const LOW_WATER_GRACE: Duration = Duration::from_millis(100);

/// The receive low-water mark for a read while `length` bytes of a literal are still to come and
/// at most `held` of them are already above the socket (`None`: unknown): never more than the
/// server is sure to send still, 1 (the default) when that is too little to be worth a mark.
fn low_water_for(length: u64, held: Option<usize>) -> usize {
    let sure_to_come = held.map_or(0, |held| length.saturating_sub(held as u64));
    // In steps of 4 KiB, so that the mark is not set again for every read.
    let due = (sure_to_come.min(LITERAL_LOW_WATER as u64) as usize) & !(4096 - 1);
    if due < MIN_LOW_WATER {
        1
    } else {
        due
    }
}

impl Conn {
    async fn fill(&mut self) -> Result<()> {
        let timeout = self.timeout;
        // Every read belongs to a response; its clock bounds the response as a whole, so a server
        // trickling bytes cannot hold us however patiently it feeds each single read.
        let clock = self.clock.get_or_insert_with(|| ResponseClock::start(self.pace));
        let Some(wait) = clock.next_wait(timeout) else {
            let what = format!("the IMAP server answers too slowly ({})", clock.describe());
            return Err(self.fail(Error::Timeout { what }));
        };
        // Read straight into the buffer: a stack array would live inside every future above us.
        self.buf.reserve(64 * 1024);
        let before = self.buf.len();
        let Some(io) = self.io.as_mut().filter(|_| !self.broken) else {
            return Err(Error::connection("the IMAP connection is no longer usable"));
        };
        let mut read = tokio::time::timeout(wait, io.read_buf(&mut self.buf)).await;
        if read.is_err() && self.low_water > 1 {
            // Bytes may be waiting below the mark: a slow server is timed by what it sent.
            self.low_water = match io.set_low_water(1) {
                Ok(()) => 1,
                Err(_) => 0,
            };
            read = tokio::time::timeout(LOW_WATER_GRACE, io.read_buf(&mut self.buf)).await;
        }
        let read = match read {
            Err(_) if wait < timeout => {
                let clock = self.clock.as_ref().map(ResponseClock::describe).unwrap_or_default();
                return Err(self
                    .fail(Error::Timeout { what: format!("the IMAP server answers too slowly ({clock})") }));
            }
            Err(_) => {
                return Err(self.fail(Error::Timeout {
                    what: format!("no answer from the IMAP server for {timeout:?}"),
                }))
            }
            Ok(Err(err)) => {
                return Err(self.fail(Error::Connection {
                    message: "reading from the IMAP server".into(),
                    source: Some(Box::new(err)),
                }))
            }
            Ok(Ok(read)) => read,
        };
        // The one place bytes come in: what the trace shows is exactly what was read.
        if let Some(trace) = &mut self.trace {
            trace.received(&self.buf[before..]);
        }
        if let Some(clock) = &mut self.clock {
            clock.received(read as u64);
        }
        if let Some(rate) = &self.rate {
            rate.take(read as u64).await;
        }
        if read == 0 {
            let error = match self.bye.take() {
                Some(bye) => errors::from_bye(&bye),
                None => Error::connection("the IMAP server closed the connection"),
            };
            return Err(self.fail(error));
        }
        Ok(())
    }

    /// Reads one line (through LF) into `out`.
    async fn read_line(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let mut scanned = 0;
        loop {
            if let Some(position) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + position + 1;
                out.extend_from_slice(&self.buf[..end]);
                self.buf.advance(end);
                return Ok(());
            }
            scanned = self.buf.len();
            if out.len() + scanned > MAX_LINE {
                return Err(self.fail(Error::protocol("IMAP response line too long")));
            }
            self.fill().await?;
        }
    }

    /// Reads exactly `length` bytes, handing them to `each` chunk by chunk.
    async fn read_exact_with(
        &mut self,
        mut length: u64,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        while length > 0 {
            if self.buf.is_empty() {
                self.set_low_water(length);
                self.fill().await?;
            }
            let take = (self.buf.len() as u64).min(length) as usize;
            each(&self.buf[..take]).map_err(|e| self.fail(e))?;
            self.buf.advance(take);
            length -= take as u64;
        }
        self.set_low_water(0);
        Ok(())
    }

    /// Sets the socket's low-water mark for the next read of a literal with `length` bytes still
    /// to come ([`low_water_for`]: at most [`LITERAL_LOW_WATER`], never more than the server is
    /// sure to send still), or back to 1 with `length` 0. The option is set only when the mark
    /// changes (in 4 KiB steps).
    fn set_low_water(&mut self, length: u64) {
        let Some(io) = self.io.as_ref().filter(|_| self.low_water != 0) else { return };
        let due = low_water_for(length, io.held_above_socket());
        if due != self.low_water {
            // A socket that refuses the option is read as before, woken for every piece.
            self.low_water = if io.set_low_water(due).is_ok() { due } else { 0 };
        }
    }

    /// Reads one whole response: its lines and the literals they announce.
    pub async fn read_frame(&mut self) -> Result<Frame> {
        let (mut bytes, mut literals) = (Vec::new(), Vec::new());
        loop {
            self.read_line(&mut bytes).await?;
            let Some(length) = literal_length(&bytes) else {
                return Ok(Frame { bytes: bytes.into(), literals });
            };
            if let Some(oversized) = self.literal_policy.verdict(&bytes, length) {
                // A message body larger than announced is not read on (it could be anything, of
                // any size: `--max-size` and the spool trusted the announcement); a string is read
                // and dropped when that is cheap, so that the rest of a listing still arrives.
                if oversized.length > MAX_DISCARDED_LITERAL || self.literal_policy == LiteralPolicy::Bodies {
                    // Reading it would take hours or fill the disk; nothing after it can be read
                    // in step, so the connection ends here.
                    let error = Error::protocol(format!(
                        "the IMAP server announced a literal of {} bytes where at most {} were expected{}",
                        oversized.length,
                        oversized.limit,
                        oversized
                            .announced_size
                            .map(|size| format!(" (it announced the message as {size} bytes)"))
                            .unwrap_or_default()
                    ));
                    self.oversized.push(oversized);
                    return Err(self.fail(error));
                }
                // Read and dropped, so that the connection stays in step; the command's handler
                // sees an empty literal and learns why from `oversized`.
                self.read_exact_with(length, |_| Ok(())).await?;
                self.oversized.push(oversized);
                literals.push(LiteralSlot { offset: bytes.len(), spooled: None, dropped: true });
                continue;
            }
            let inline_limit = self.spool.threshold.max(MIN_INLINE_LITERAL) as u64;
            if length <= inline_limit {
                literals.push(LiteralSlot { offset: bytes.len(), spooled: None, dropped: false });
                // Room for the literal and the rest of the line at once: growing by doubling would
                // copy a message body several times, and leave up to twice its size allocated
                // (the body is a slice of this buffer).
                bytes.reserve_exact(length as usize + REST_OF_LINE);
                self.read_exact_with(length, |chunk| {
                    bytes.extend_from_slice(chunk);
                    Ok(())
                })
                .await?;
            } else {
                let mut builder = self.spool.builder();
                builder.expect(length).map_err(|e| self.fail(e))?;
                // A message body is judged for NUL bytes on its way to disk, not read back for it.
                let mut scanner = (self.literal_policy == LiteralPolicy::Bodies).then(StrayScanner::default);
                self.read_exact_with(length, |chunk| {
                    if let Some(scanner) = &mut scanner {
                        scanner.feed(chunk);
                    }
                    builder.push(chunk)
                })
                .await?;
                let body = builder.finish().map_err(|e| self.fail(e))?;
                let spooled = Spooled { body, nul_scan: scanner.map(StrayScanner::finish) };
                literals.push(LiteralSlot { offset: bytes.len(), spooled: Some(spooled), dropped: false });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn short_literals_and_unknown_holdings_get_no_mark() {
        assert_eq!(low_water_for(4096, Some(0)), 1);
        assert_eq!(low_water_for(MIN_LOW_WATER as u64 - 1, Some(0)), 1);
        assert_eq!(low_water_for(10 * 1024 * 1024, None), 1, "DEFLATE: nothing is sure");
        assert_eq!(low_water_for(100 * 1024, Some(96 * 1024)), 1);
        assert_eq!(low_water_for(10 * 1024 * 1024, Some(64 * 1024)), LITERAL_LOW_WATER);
        assert_eq!(low_water_for(20 * 1024 + 5, Some(0)), 20 * 1024);
    }

    proptest! {
        /// The mark never asks for more than is sure to come: a read would wait for bytes that
        /// never come.
        #[test]
        fn the_mark_never_exceeds_what_is_sure_to_come(length in 0u64..1 << 24, held in 0usize..1 << 20) {
            let mark = low_water_for(length, Some(held));
            prop_assert!((1..=LITERAL_LOW_WATER).contains(&mark));
            if mark > 1 {
                prop_assert!(mark as u64 <= length.saturating_sub(held as u64));
                prop_assert!(mark >= MIN_LOW_WATER);
            }
        }
    }
}
