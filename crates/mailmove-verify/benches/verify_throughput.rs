//! Verify throughput against the engine's copy throughput, memory → memory, same data.
//!
//! 20 000 messages of mixed sizes (80 % 1–4 KiB, 18 % 10–40 KiB, 2 % 100–300 KiB) in four
//! folders. `copy` runs the real engine (in-memory checkpoint) into a fresh destination each
//! iteration; `verify_*` compares the source with a destination copied once beforehand.
//! Run with `cargo bench -p mailmove-verify --bench verify_throughput`.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, EventSink};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Flags, FolderPath, MailSink, MailSource};
use mailmove_verify::{verify, VerifyEvents, VerifyMode, VerifyOptions};

const MESSAGES: usize = 20_000;

/// A small deterministic generator (xorshift), so every run measures the same mailbox.
struct Sizes(u64);

impl Sizes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn size(&mut self) -> usize {
        let bucket = self.next() % 100;
        let (low, high) = match bucket {
            0..=79 => (1024, 4096),
            80..=97 => (10 * 1024, 40 * 1024),
            _ => (100 * 1024, 300 * 1024),
        };
        low + (self.next() % (high - low) as u64) as usize
    }
}

fn message(index: usize, size: usize) -> Vec<u8> {
    let mut out = format!(
        "From: Sender <s{index}@example.org>\r\nTo: r@example.net\r\nSubject: message {index}\r\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{index}@bench.example.org>\r\n\r\n"
    )
    .into_bytes();
    let line = format!("body line of message {index}, padded to look like text .................\r\n");
    while out.len() < size {
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn mailbox() -> (MemoryStore, u64) {
    let store = MemoryStore::new("bench-source");
    let folders: Vec<FolderPath> =
        ["INBOX", "Archive/2022", "Archive/2023", "Sent"].iter().map(|f| FolderPath::parse(f)).collect();
    let mut sizes = Sizes(0x9E37_79B9_7F4A_7C15);
    let mut bytes = 0u64;
    for index in 0..MESSAGES {
        let body = message(index, sizes.size());
        bytes += body.len() as u64;
        let flags =
            Flags { seen: !index.is_multiple_of(3), flagged: index.is_multiple_of(17), ..Flags::default() };
        store.insert(&folders[index % folders.len()], body, flags, None);
    }
    (store, bytes)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (source, bytes) = mailbox();
    let copied = MemoryStore::new("bench-copied");
    runtime.block_on(async {
        let checkpoint = Checkpoint::in_memory("bench-source", "bench-copied").unwrap();
        let report =
            copy(&source, &copied, &CopyOptions::default(), &checkpoint, &EventSink::none()).await.unwrap();
        assert_eq!(report.copied as usize, MESSAGES);
    });

    let mut group = c.benchmark_group("memory_to_memory_20k");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(30));
    group.throughput(Throughput::Bytes(bytes));

    group.bench_function("copy", |b| {
        b.iter_batched(
            || {
                let destination = MemoryStore::new("bench-destination");
                let checkpoint =
                    Checkpoint::in_memory(&MailSource::identity(&source), &MailSink::identity(&destination))
                        .unwrap();
                (destination, checkpoint)
            },
            |(destination, checkpoint)| {
                runtime.block_on(async {
                    let report =
                        copy(&source, &destination, &CopyOptions::default(), &checkpoint, &EventSink::none())
                            .await
                            .unwrap();
                    assert_eq!(report.copied as usize, MESSAGES);
                })
            },
            BatchSize::PerIteration,
        )
    });

    for mode in [VerifyMode::Strict, VerifyMode::Headers] {
        group.bench_function(format!("verify_{mode}"), |b| {
            let options = VerifyOptions { mode, ..VerifyOptions::default() };
            b.iter(|| {
                runtime.block_on(async {
                    let report = verify(&source, &copied, &options, &VerifyEvents::none()).await.unwrap();
                    assert!(report.identical);
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
