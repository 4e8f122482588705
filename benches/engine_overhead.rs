//! Engine overhead, memory → memory: messages per second for many small messages, with a file
//! checkpoint (the real configuration) and with an in-memory one (the engine alone).
//!
//! Run: `cargo bench --bench engine_overhead`. Set `MAILMOVE_BENCH_MESSAGES` to change the count
//! (default 100 000).
// `criterion_group!` makes a public function without docs.
#![allow(missing_docs)]

#[path = "support/mod.rs"]
mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mailmove::core::checkpoint::Checkpoint;
use mailmove::core::engine::{copy, CopyOptions, EventSink};
use mailmove::core::memory::MemoryStore;
use mailmove::core::{Flags, FolderPath, MailSink, MailSource};
use support::{DiscardSink, GeneratedSource};

fn message_count() -> usize {
    std::env::var("MAILMOVE_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

fn bench(c: &mut Criterion) {
    let count = message_count();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("engine_overhead");
    group.sample_size(10);
    group.throughput(Throughput::Elements(count as u64));

    let source = MemoryStore::new("bench-source");
    for folder in 0..4 {
        let path = FolderPath::parse(&format!("folder{folder}"));
        for i in 0..count / 4 {
            source.insert(
                &path,
                format!("Message-ID: <{i}.{folder}@b>\r\nSubject: s\r\n\r\nbody {i}\r\n").into_bytes(),
                Flags::empty(),
                None,
            );
        }
    }
    group.bench_function(BenchmarkId::new("memory_to_memory_file_checkpoint", count), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let sink = MemoryStore::new("bench-sink");
                let dir = tempfile::tempdir().expect("tempdir");
                let checkpoint = Checkpoint::open(
                    &dir.path().join("s.sqlite"),
                    &MailSource::identity(&source),
                    &MailSink::identity(&sink),
                )
                .expect("checkpoint");
                let report = copy(&source, &sink, &CopyOptions::default(), &checkpoint, &EventSink::none())
                    .await
                    .expect("copy");
                assert_eq!(report.copied as usize, count);
            })
        })
    });
    group.bench_function(BenchmarkId::new("generated_to_discard_memory_checkpoint", count), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let source = GeneratedSource { folders: 4, count, size: 300 };
                let sink = DiscardSink::default();
                let checkpoint = Checkpoint::in_memory("a", "b").expect("checkpoint");
                let report = copy(&source, &sink, &CopyOptions::default(), &checkpoint, &EventSink::none())
                    .await
                    .expect("copy");
                assert_eq!(report.copied as usize, count);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
