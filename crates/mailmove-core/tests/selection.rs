//! Selection by what messages say (`--message-id`, `--from`, `--subject`, `--text`) through the
//! copy engine: exactly the matching messages travel, the rest are counted as filtered and stay
//! unrecorded, so that a later run without the criteria copies them; a store's own search narrows
//! what is fetched, and its false positives are matched out locally.

mod common;

use std::sync::Mutex;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, Event, EventSink, MessageFilter, RetryPolicy, RunReport};
use mailmove_core::memory::MemoryStore;
use mailmove_core::selection::SearchCriteria;
use mailmove_core::{
    Error, FolderInfo, FolderPath, MailSource, Message, MessageMeta, Result, SourceCapabilities, SourceKey,
};

use common::run;

/// Six messages in INBOX (keys 1 to 6), one in Archive (key 1).
fn source() -> MemoryStore {
    let store = MemoryStore::new("source");
    let inbox = FolderPath::inbox();
    let messages: [&[u8]; 6] = [
        b"From: Ana Lopez <ana@example.org>\r\nSubject: Invoice 2023\r\nMessage-ID: <inv-1@example.org>\r\n\r\nPlease pay.\r\n",
        b"From: Bo <bo@example.org>\r\nSubject: Lunch\r\nMessage-ID: <lunch-2@example.org>\r\n\r\nNoon?\r\n",
        b"From: =?UTF-8?Q?Ana_L=C3=B3pez?= <ana@example.org>\r\nSubject: =?UTF-8?B?UsOpdW5pb24=?=\r\nMessage-ID: <meet-3@example.org>\r\n\r\nAgenda attached.\r\n",
        b"From: Cy <cy@example.org>\r\nSubject: Invoice 2024\r\nMessage-ID: <inv-4@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nTotal: 42 =E2=82=AC, due Friday.\r\n",
        b"From: Bo <bo@example.org>\r\nSubject: Re: Invoice 2023\r\nMessage-ID: <xinv-1@example.org>\r\n\r\nPaid.\r\n",
        b"Subject: no sender\r\n\r\nplain\r\n",
    ];
    for raw in messages {
        store.insert(&inbox, raw.to_vec(), Default::default(), None);
    }
    store.insert(
        &FolderPath::parse("Archive"),
        b"From: Ana <ana@example.org>\r\nSubject: Old invoice\r\nMessage-ID: <old-9@example.org>\r\n\r\nArchived.\r\n"
            .to_vec(),
        Default::default(),
        None,
    );
    store
}

fn options(search: SearchCriteria) -> CopyOptions {
    CopyOptions {
        filter: MessageFilter { search, ..MessageFilter::default() },
        retry: RetryPolicy::immediate(3),
        // Without flag sync a later run may resume after a folder's watermark: the criteria must
        // be part of what guards it.
        sync_flags: false,
        ..CopyOptions::default()
    }
}

fn subjects(store: &MemoryStore, folder: &str) -> Vec<String> {
    let mut out: Vec<String> = store
        .contents(&FolderPath::parse(folder))
        .into_iter()
        .map(|(bytes, _, _)| {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            text.lines().find_map(|line| line.strip_prefix("Subject: ")).unwrap_or_default().to_string()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn only_matching_messages_travel_and_a_run_without_criteria_copies_the_rest() {
    let (source, sink) = (source(), MemoryStore::new("sink"));
    let checkpoint = Checkpoint::in_memory("a", "b").unwrap();
    let by_ana =
        SearchCriteria { from: vec!["ANA".into()], subject: vec!["invoice".into()], ..Default::default() };
    let first = run(&source, &sink, &checkpoint, &options(by_ana)).await;
    assert_eq!(subjects(&sink, "INBOX"), ["Invoice 2023"]);
    assert_eq!(subjects(&sink, "Archive"), ["Old invoice"]);
    assert_eq!((first.copied, first.filtered, first.failed), (2, 5, 0), "{first:?}");

    // The message-id is exact: `inv-1` is not `xinv-1` (which a substring search would find).
    let exact = SearchCriteria { message_id: vec!["<xinv-1@example.org>".into()], ..Default::default() };
    let second = run(&source, &sink, &checkpoint, &options(exact)).await;
    assert_eq!((second.copied, second.filtered, second.skipped), (1, 4, 2), "{second:?}");
    assert_eq!(subjects(&sink, "INBOX"), ["Invoice 2023", "Re: Invoice 2023"]);

    // No criteria: everything the criteria left out is copied now; nothing twice.
    let rest = run(&source, &sink, &checkpoint, &options(SearchCriteria::default())).await;
    assert_eq!((rest.copied, rest.skipped, rest.filtered, rest.failed), (4, 3, 0, 0), "{rest:?}");
    assert_eq!(sink.contents(&FolderPath::inbox()).len(), 6);
    assert_eq!(sink.contents(&FolderPath::parse("Archive")).len(), 1);
}

#[tokio::test]
async fn encoded_headers_and_text_parts_select_and_filtered_messages_are_named_in_events() {
    let (source, sink) = (source(), MemoryStore::new("sink"));
    let (events, mut received) = EventSink::channel();
    let criteria = SearchCriteria { subject: vec!["réunion".into()], ..Default::default() };
    let report = copy(&source, &sink, &options(criteria), &Checkpoint::in_memory("a", "b").unwrap(), &events)
        .await
        .unwrap();
    assert_eq!((report.copied, report.filtered), (1, 6));
    drop(events);
    let mut filtered = 0;
    while let Ok(event) = received.try_recv() {
        if let Event::MessageSkipped { reason: "filtered", .. } = event {
            filtered += 1;
        }
    }
    assert_eq!(filtered, 6, "each message left out is one event");

    let sink = MemoryStore::new("sink");
    let euro = SearchCriteria { text: vec!["42 €, DUE friday".into()], ..Default::default() };
    let report = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &options(euro)).await;
    assert_eq!((report.copied, report.filtered), (1, 6));
    assert_eq!(subjects(&sink, "INBOX"), ["Invoice 2024"]);
}

#[tokio::test]
async fn criteria_combine_with_folder_filters_and_dry_runs_count_what_would_travel() {
    let source = source();
    let criteria = SearchCriteria { from: vec!["ana@example.org".into()], ..Default::default() };
    let mut options = options(criteria);
    options.filter.include = vec!["INBOX".into()];
    options.dry_run = true;
    let sink = MemoryStore::new("sink");
    let plan = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &options).await;
    assert_eq!((plan.planned, plan.filtered), (2, 4), "{plan:?}");
    assert!(sink.folders().is_empty(), "a dry run writes nothing");
    options.dry_run = false;
    let report = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &options).await;
    assert_eq!((report.copied, report.filtered), (2, 4));
    assert_eq!(subjects(&sink, "INBOX"), ["=?UTF-8?B?UsOpdW5pb24=?=", "Invoice 2023"]);
    assert!(!sink.folders().contains(&FolderPath::parse("Archive")));
}

/// A source that searches like a server that matches loosely (every message whose bytes hold
/// the wanted Message-IDs, in any case), counting what the engine fetches; its next searches
/// fail with the errors in `failures`.
#[derive(Debug)]
struct Searching {
    inner: MemoryStore,
    fetched: Mutex<Vec<SourceKey>>,
    searches: Mutex<usize>,
    failures: Mutex<Vec<Error>>,
    /// The next listing of INBOX is cut by a transient error after this many messages.
    cut_listing_after: Mutex<Option<usize>>,
}

impl Searching {
    fn new(inner: MemoryStore) -> Self {
        Searching {
            inner,
            fetched: Mutex::default(),
            searches: Mutex::default(),
            failures: Mutex::default(),
            cut_listing_after: Mutex::default(),
        }
    }

    fn fetched(&self) -> usize {
        self.fetched.lock().unwrap().len()
    }

    /// What the loose search finds, read straight from the store (not counted as fetched).
    async fn loosely(&self, folder: &FolderPath, needles: Vec<String>) -> Vec<Result<SourceKey>> {
        let metas: Vec<_> = self.inner.list_messages(folder, None).collect().await;
        let keys: Vec<SourceKey> = metas.into_iter().map(|meta| meta.unwrap().key).collect();
        let messages: Vec<_> = self.inner.fetch(folder, &keys).collect().await;
        messages
            .into_iter()
            .map(Result::unwrap)
            .filter(|message| {
                let text = String::from_utf8_lossy(&message.body.to_bytes().unwrap()).to_lowercase();
                needles.iter().all(|needle| text.contains(needle.as_str()))
            })
            .map(|message| Ok(message.meta.key))
            .collect()
    }
}

#[async_trait]
impl MailSource for Searching {
    fn identity(&self) -> String {
        self.inner.identity()
    }
    fn capabilities(&self) -> SourceCapabilities {
        MailSource::capabilities(&self.inner)
    }
    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        MailSource::list_folders(&self.inner).await
    }
    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        let cut = folder.is_inbox().then(|| self.cut_listing_after.lock().unwrap().take()).flatten();
        match cut {
            Some(count) => self
                .inner
                .list_messages(folder, after)
                .take(count)
                .chain(stream::iter(vec![Err(Error::connection("listing cut"))]))
                .boxed(),
            None => self.inner.list_messages(folder, after),
        }
    }
    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        self.fetched.lock().unwrap().extend(keys.iter().cloned());
        self.inner.fetch(folder, keys)
    }
    fn search<'a>(
        &'a self,
        folder: &'a FolderPath,
        criteria: &'a SearchCriteria,
    ) -> Option<BoxStream<'a, Result<SourceKey>>> {
        *self.searches.lock().unwrap() += 1;
        if let Some(error) = self.failures.lock().unwrap().pop() {
            return Some(stream::iter(vec![Err(error)]).boxed());
        }
        let needles = criteria.message_id.iter().map(|id| id.to_lowercase()).collect();
        Some(stream::once(self.loosely(folder, needles)).flat_map(stream::iter).boxed())
    }
}

async fn run_searching(source: &Searching, criteria: SearchCriteria) -> (RunReport, MemoryStore) {
    let sink = MemoryStore::new("sink");
    let checkpoint = Checkpoint::in_memory("a", "b").unwrap();
    let report = copy(source, &sink, &options(criteria), &checkpoint, &EventSink::none()).await.unwrap();
    (report, sink)
}

#[tokio::test]
async fn a_stores_search_narrows_the_fetch_and_its_false_positives_are_matched_out() {
    let source = Searching::new(source());
    let criteria = SearchCriteria { message_id: vec!["inv-1@example.org".into()], ..Default::default() };
    let (report, sink) = run_searching(&source, criteria).await;
    // The loose search finds `inv-1` and `xinv-1` in INBOX, nothing in Archive: two fetched.
    assert_eq!(source.fetched(), 2, "only what the search found is fetched");
    assert_eq!(*source.searches.lock().unwrap(), 2, "one search per folder");
    assert_eq!((report.copied, report.filtered, report.failed), (1, 6, 0), "{report:?}");
    assert_eq!(subjects(&sink, "INBOX"), ["Invoice 2023"]);
}

#[tokio::test]
async fn a_failed_search_falls_back_to_matching_every_message_and_says_so() {
    let source = Searching::new(source());
    let refused = || Error::protocol("UID SEARCH: the server answered BAD");
    *source.failures.lock().unwrap() = vec![refused(), refused()];
    let criteria = SearchCriteria { message_id: vec!["meet-3@example.org".into()], ..Default::default() };
    let (report, sink) = run_searching(&source, criteria.clone()).await;
    assert_eq!((report.copied, report.filtered), (1, 6), "{report:?}");
    assert_eq!(sink.contents(&FolderPath::inbox()).len(), 1);
    let warned = report.warnings.iter().filter(|w| w.contains("search failed")).count();
    assert_eq!(warned, 2, "{:?}", report.warnings);
    assert_eq!(source.fetched(), 7, "every message is fetched and matched locally");

    // A transient failure is retried with the listing: nothing is fetched in vain.
    let source = Searching::new(self::source());
    *source.failures.lock().unwrap() = vec![Error::connection("cut")];
    let (report, _) = run_searching(&source, criteria).await;
    assert_eq!((report.copied, report.failed), (1, 0), "{report:?}");
    assert_eq!(source.fetched(), 1);
    assert_eq!(*source.searches.lock().unwrap(), 3, "asked again after the cut");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[tokio::test]
async fn a_folder_listed_again_after_a_cut_counts_what_it_left_out_once() {
    let source = Searching::new(source());
    // Cut after four INBOX messages, whose content is matched (three left out) before the retry
    // round lists the folder again and matches them again.
    *source.cut_listing_after.lock().unwrap() = Some(4);
    let criteria = SearchCriteria { subject: vec!["2023".into()], ..Default::default() };
    let sink = MemoryStore::new("sink");
    let options = options(criteria);
    // Without a search: the local match decides.
    let source = NoSearch(source);
    let report =
        copy(&source, &sink, &options, &Checkpoint::in_memory("a", "b").unwrap(), &EventSink::none())
            .await
            .unwrap();
    assert_eq!((report.copied, report.failed), (2, 0), "{report:?}");
    assert_eq!(report.filtered, 5, "each message left out counts once: {report:?}");
    assert!(source.0.fetched() > 7, "the cut folder was read twice");
}

/// The wrapper without its search: every listed message is fetched and matched locally.
#[derive(Debug)]
struct NoSearch(Searching);

#[async_trait]
impl MailSource for NoSearch {
    fn identity(&self) -> String {
        self.0.identity()
    }
    fn capabilities(&self) -> SourceCapabilities {
        self.0.capabilities()
    }
    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        self.0.list_folders().await
    }
    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        self.0.list_messages(folder, after)
    }
    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        self.0.fetch(folder, keys)
    }
}

#[tokio::test]
async fn invalid_criteria_stop_the_run_before_anything_is_read() {
    let criteria = SearchCriteria { text: vec![" ".into()], ..Default::default() };
    let error = copy(
        &source(),
        &MemoryStore::new("sink"),
        &options(criteria),
        &Checkpoint::in_memory("a", "b").unwrap(),
        &EventSink::none(),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("--text"), "{error}");
}
