//! The reader thread: the one place the PST is read.
//!
//! `outlook-pst`'s values are `Rc` and its file handle sits behind a `Mutex`, so one thread owns
//! the opened file and serves requests sent over a channel; the async [`PstStore`](crate::PstStore)
//! only sends requests and awaits their answers. Every request is a bounded piece of work (the
//! folder tree, one page of a listing, one message), so a listing in progress never starves a
//! fetch (the engine lists and fetches at once) and nothing waits on a full channel.
//!
//! `outlook-pst` can panic on a damaged file (an index out of range in a corrupt block). A
//! panic is caught per request and becomes an error naming the item; the file is then opened
//! again, because a panic while the crate held its file lock leaves that lock poisoned.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};

use encoding_rs::Encoding;
use mailmove_core::{
    BodyBuilder, Error, FolderInfo, FolderPath, Message, MessageMeta, Result, SourceKey, SpecialUse,
    SpoolConfig,
};
use outlook_pst::ltp::prop_context::PropertyValue;
use outlook_pst::ltp::table_context::TableContext;
use outlook_pst::messaging::attachment::{Attachment, AttachmentData};
use outlook_pst::messaging::folder::Folder;
use tokio::sync::oneshot;

use crate::file::{OpenedMessage, PstFile};
use crate::item::{
    self, AttachmentContent, AttachmentRef, Item, ItemKind, LoadedAttachment, Mailbox, Recipient,
    RecipientKind,
};
use crate::props::{self, integer, text};

/// Messages listed per request.
pub(crate) const LIST_PAGE: usize = 256;
/// Folder levels followed below the IPM subtree (a damaged file can make the tree a cycle).
const MAX_DEPTH: usize = 64;

/// A request to the reader thread.
pub(crate) enum Request {
    Folders { reply: oneshot::Sender<Result<Vec<FolderInfo>>> },
    List { folder: FolderPath, start: usize, reply: oneshot::Sender<Result<ListPage>> },
    Fetch { folder: FolderPath, key: SourceKey, reply: oneshot::Sender<Result<Option<Message>>> },
}

/// One page of a folder's listing.
pub(crate) struct ListPage {
    pub metas: Vec<MessageMeta>,
    /// Where the next page starts, `None` after the last one.
    pub next: Option<usize>,
}

/// Damage and skipped items found so far, keyed so that reading a folder again replaces its
/// line instead of repeating it.
pub(crate) type Warnings = Arc<Mutex<BTreeMap<String, String>>>;

/// What the thread keeps between requests.
struct State {
    path: PathBuf,
    spool: SpoolConfig,
    file: Option<PstFile>,
    /// Each listed folder's node id, found once.
    folders: Option<BTreeMap<FolderPath, u32>>,
    /// The row ids (message node ids) of the folder being listed, and the items skipped so far.
    listing: Option<Listing>,
    warnings: Warnings,
}

struct Listing {
    folder: FolderPath,
    rows: Vec<u32>,
    skipped: BTreeMap<ItemKind, u64>,
}

/// Opens the file and serves requests until the last sender is dropped. The result of opening
/// goes to `opened` first.
pub(crate) fn run(
    path: PathBuf,
    spool: SpoolConfig,
    warnings: Warnings,
    requests: mpsc::Receiver<Request>,
    opened: mpsc::Sender<std::result::Result<(), String>>,
) {
    let mut state = State { path, spool, file: None, folders: None, listing: None, warnings };
    let first = catch_unwind(AssertUnwindSafe(|| PstFile::open(&state.path)))
        .unwrap_or_else(|panic| Err(format!("outlook-pst panicked opening it: {}", panic_text(&panic))));
    match first {
        Ok(file) => {
            state.file = Some(file);
            let _ = opened.send(Ok(()));
        }
        Err(reason) => {
            let _ = opened.send(Err(reason));
            return;
        }
    }
    while let Ok(request) = requests.recv() {
        match request {
            Request::Folders { reply } => {
                let _ = reply.send(state.guarded("reading the folder tree", State::folders));
            }
            Request::List { folder, start, reply } => {
                let what = format!("listing folder {folder}");
                let _ = reply.send(state.guarded(&what, |state| state.list(&folder, start)));
            }
            Request::Fetch { folder, key, reply } => {
                let what = format!("reading item {key} of folder {folder}");
                let _ = reply.send(state.guarded(&what, |state| state.fetch(&key)));
            }
        }
    }
}

/// A panic's message.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

impl State {
    /// The error for damage found while doing `what`.
    fn corrupt(&self, what: &str, reason: impl std::fmt::Display) -> Error {
        Error::Corrupt { location: format!("{} ({what})", self.path.display()), reason: reason.to_string() }
    }

    /// Runs one request, turning a panic of `outlook-pst` into an error and reopening the file.
    fn guarded<T>(&mut self, what: &str, work: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        if self.file.is_none() {
            let file = catch_unwind(AssertUnwindSafe(|| PstFile::open(&self.path)))
                .unwrap_or_else(|panic| Err(panic_text(&panic)))
                .map_err(|reason| self.corrupt("opening it again", reason))?;
            self.file = Some(file);
        }
        match catch_unwind(AssertUnwindSafe(|| work(self))) {
            Ok(result) => result,
            Err(panic) => {
                self.file = None;
                self.listing = None;
                Err(self.corrupt(what, format!("outlook-pst failed on damaged data: {}", panic_text(&panic))))
            }
        }
    }

    fn file(&self) -> &PstFile {
        self.file.as_ref().expect("guarded() opened the file")
    }

    /// The folder tree below the IPM subtree, depth first, in each folder's hierarchy-table order.
    fn folders(&mut self) -> Result<Vec<FolderInfo>> {
        let root = self.file().ipm_subtree().map_err(|err| self.corrupt("opening the IPM subtree", err))?;
        let mut infos = Vec::new();
        let mut ids = BTreeMap::new();
        let mut seen = HashSet::new();
        let mut stack: Vec<(Rc<dyn Folder>, FolderPath, usize)> =
            vec![(root, FolderPath::new(Vec::<String>::new()), 0)];
        while let Some((folder, path, depth)) = stack.pop() {
            let Some(table) = folder.hierarchy_table() else { continue };
            let mut children = Vec::new();
            for (node, mut values) in table_values(table.as_ref(), &[props::DISPLAY_NAME]) {
                let row_name = values.remove(&props::DISPLAY_NAME);
                let row_name = row_name.and_then(|value| text(Some(&value), encoding_rs::WINDOWS_1252));
                let name = row_name.clone().unwrap_or_else(|| format!("folder {node:#x}"));
                if depth >= MAX_DEPTH || !seen.insert(node) {
                    self.warn(format!("folder {node:#x}"), format!("PST folder {name:?} appears twice in the folder tree (a damaged file): read once"));
                    continue;
                }
                let child = match self.file().open_folder(node) {
                    Ok(child) => child,
                    Err(err) => {
                        let child_path = unique_path(&ids, &path, &name);
                        infos.push(FolderInfo::unusable(
                            child_path.clone(),
                            format!("PST folder not readable: {err}"),
                        ));
                        ids.insert(child_path, node);
                        continue;
                    }
                };
                let name = child.properties().display_name().ok().or(row_name).unwrap_or(name);
                let name = if name.trim().is_empty() { "(no name)".to_string() } else { name };
                let child_path = unique_path(&ids, &path, &name);
                if child_path.name() != name {
                    self.warn(
                        format!("duplicate {child_path}"),
                        format!(
                            "PST folder {:?} has a sibling of the same name: copied as {child_path}",
                            path.join(&name).to_string()
                        ),
                    );
                }
                let class = text(child.properties().get(props::CONTAINER_CLASS), encoding_rs::WINDOWS_1252);
                let count =
                    child.properties().content_count().ok().and_then(|count| u64::try_from(count).ok());
                ids.insert(child_path.clone(), node);
                match class.as_deref().filter(|class| !is_mail_container(class)) {
                    // An empty calendar or contacts folder loses nothing by staying behind.
                    Some(_) if count == Some(0) => {}
                    Some(class) => {
                        let items = match count {
                            Some(1) => "1 item".to_string(),
                            Some(count) => format!("{count} items"),
                            None => "its items".to_string(),
                        };
                        self.warn(
                            format!("left out {child_path}"),
                            format!("PST folder {child_path} ({class}, {items}) left out: it holds no mail"),
                        )
                    }
                    None => {
                        let mut info = FolderInfo::new(child_path.clone());
                        info.messages = count;
                        infos.push(info);
                    }
                }
                children.push((child, child_path, depth + 1));
            }
            // Depth first in table order: push the children in reverse.
            stack.extend(children.into_iter().rev());
        }
        self.folders = Some(ids);
        Ok(infos)
    }

    /// One page of a folder's mail items, from `start`. Items that are not mail are counted into
    /// the folder's warning when the last page is read.
    fn list(&mut self, folder: &FolderPath, start: usize) -> Result<ListPage> {
        if start == 0 || self.listing.as_ref().is_none_or(|listing| &listing.folder != folder) {
            let node = self.folder_node(folder)?;
            let opened = self
                .file()
                .open_folder(node)
                .map_err(|err| self.corrupt(&format!("opening folder {folder}"), err))?;
            let counted =
                opened.properties().content_count().ok().and_then(|count| usize::try_from(count).ok());
            let rows: Vec<u32> = match opened.contents_table() {
                Some(table) => table.rows_matrix().map(|row| u32::from(row.id())).collect(),
                // No table is an empty folder only when the folder says so; otherwise its items
                // cannot be listed, and that is an error, never an empty folder.
                None if counted.unwrap_or(0) > 0 => {
                    return Err(self.corrupt(
                        &format!("listing folder {folder}"),
                        format!(
                            "its contents table cannot be read; the folder counts {} items",
                            counted.unwrap_or(0)
                        ),
                    ))
                }
                None => Vec::new(),
            };
            if let Some(counted) = counted.filter(|counted| *counted > rows.len()) {
                self.warn(
                    format!("short {folder}"),
                    format!(
                        "PST folder {folder} counts {counted} items but its contents table lists {}: the rest \
                         cannot be found (a damaged file)",
                        rows.len()
                    ),
                );
            }
            self.listing = Some(Listing { folder: folder.clone(), rows, skipped: BTreeMap::new() });
        }
        let listing = self.listing.take().expect("set above");
        let end = listing.rows.len().min(start.saturating_add(LIST_PAGE));
        let mut metas = Vec::new();
        let mut skipped = listing.skipped;
        for &node in listing.rows.get(start..end).unwrap_or(&[]) {
            let key = SourceKey::new(node.to_string());
            let opened = match self.file().open_message(node, Some(props::LISTING)) {
                Ok(opened) => opened,
                Err(_) => {
                    // Listed anyway: fetching it fails and names the damage, never a silent skip.
                    metas.push(MessageMeta::new(key, 0));
                    continue;
                }
            };
            let properties = opened.message().properties();
            let get = |id: u16| properties.get(id).cloned();
            let class =
                text(properties.get(props::MESSAGE_CLASS), props::item_encoding(&get)).unwrap_or_default();
            let kind = ItemKind::of_class(&class);
            if kind != ItemKind::Mail {
                *skipped.entry(kind).or_default() += 1;
                continue;
            }
            metas.push(meta_of(key, &get));
        }
        let next = (end < listing.rows.len()).then_some(end);
        if next.is_none() && !skipped.is_empty() {
            let counts: Vec<String> =
                skipped.iter().map(|(kind, count)| format!("{}: {count}", kind.plural())).collect();
            self.warn(
                format!("skipped {folder}"),
                format!("PST folder {folder}: items that are not mail skipped ({})", counts.join(", ")),
            );
        }
        self.listing = Some(Listing { skipped, ..listing });
        Ok(ListPage { metas, next })
    }

    /// The node id of a listed folder.
    fn folder_node(&mut self, folder: &FolderPath) -> Result<u32> {
        if self.folders.is_none() {
            self.folders()?;
        }
        self.folders
            .as_ref()
            .and_then(|folders| folders.get(folder).copied())
            .ok_or_else(|| Error::NotFound { what: format!("PST folder {folder}") })
    }

    /// One message, rebuilt; `None` when the key names no item.
    fn fetch(&mut self, key: &SourceKey) -> Result<Option<Message>> {
        let Ok(node) = key.as_str().parse::<u32>() else { return Ok(None) };
        let what = format!("item {key}");
        let opened = self.file().open_message(node, None).map_err(|err| self.corrupt(&what, err))?;
        let properties = opened.message().properties();
        let get = |id: u16| properties.get(id).cloned();
        let item = item_of(opened.message());
        let encoding = props::item_encoding(&get);
        let mut body = BodyWriter::new(self.spool.builder());
        let mut damage = Vec::new();
        let mut load = |attachment: &AttachmentRef| load_attachment(&opened, attachment, encoding);
        crate::mime::write_message(&item, key.as_str(), &mut load, &mut body, &mut damage)
            .map_err(|err| Error::io(format!("rebuilding {what} of {}", self.path.display()), err))?;
        let body = body.finish()?;
        let mut meta = meta_of(key.clone(), &get).with_reconstructed(true);
        if !damage.is_empty() {
            meta = meta.with_damage(format!("rebuilt from the PST without: {}", damage.join("; ")));
        }
        Ok(Some(Message::new(meta, body)))
    }

    fn warn(&self, key: String, text: String) {
        self.warnings.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, text);
    }
}

/// Whether a folder's container class holds mail: `IPF.Note` and its kinds, `IPF.Imap`, or none.
fn is_mail_container(class: &str) -> bool {
    let class = class.to_ascii_lowercase();
    class.is_empty() || class == "ipf" || class.starts_with("ipf.note") || class.starts_with("ipf.imap")
}

/// `parent/name`, or `parent/name (2)`... when a sibling already took that path.
fn unique_path(taken: &BTreeMap<FolderPath, u32>, parent: &FolderPath, name: &str) -> FolderPath {
    let role = parent.is_root().then(|| SpecialUse::guess_from_name(name)).flatten();
    let mut candidate = parent.join(name).with_role(role);
    let mut n = 2;
    while taken.contains_key(&candidate) {
        candidate = parent.join(format!("{name} ({n})"));
        n += 1;
    }
    candidate
}

/// The listing's view of an item.
fn meta_of(key: SourceKey, get: item::Getter<'_>) -> MessageMeta {
    let size =
        integer(get(props::MESSAGE_SIZE).as_ref()).and_then(|size| u64::try_from(size).ok()).unwrap_or(0);
    // Whole seconds: what every destination keeps (IMAP's INTERNALDATE, a file's mtime), so
    // that verification does not see Outlook's milliseconds as a change.
    let internal_date = item::internal_date(get)
        .and_then(|date| chrono::DateTime::from_timestamp(date.timestamp(), 0))
        .map(|date| date.fixed_offset());
    let mut meta =
        MessageMeta::new(key, size).with_flags(item::flags_of(get)).with_internal_date(internal_date);
    meta.message_id = text(get(props::INTERNET_MESSAGE_ID).as_ref(), props::item_encoding(get));
    meta
}

/// Several columns of each row of a table.
fn table_values(table: &dyn TableContext, columns: &[u16]) -> Vec<(u32, BTreeMap<u16, PropertyValue>)> {
    let context = table.context();
    table
        .rows_matrix()
        .map(|row| {
            let mut values = BTreeMap::new();
            if let Ok(cells) = row.columns(context) {
                for (descriptor, cell) in context.columns().iter().zip(cells) {
                    if !columns.contains(&descriptor.prop_id()) {
                        continue;
                    }
                    if let Some(value) =
                        cell.and_then(|cell| table.read_column(&cell, descriptor.prop_type()).ok())
                    {
                        values.insert(descriptor.prop_id(), value);
                    }
                }
            }
            (u32::from(row.id()), values)
        })
        .collect()
}

/// An item with its recipients and the list of its attachments.
fn item_of(message: &dyn outlook_pst::messaging::message::Message) -> Item {
    let properties = message.properties();
    let get = |id: u16| properties.get(id).cloned();
    let encoding = props::item_encoding(&get);
    let mut item = Item::from_properties(&get);
    if let Some(table) = message.recipient_table() {
        let columns = [
            props::RECIPIENT_TYPE,
            props::DISPLAY_NAME,
            props::ADDRESS_TYPE,
            props::EMAIL_ADDRESS,
            props::SMTP_ADDRESS,
        ];
        for (_, values) in table_values(table.as_ref(), &columns) {
            let string = |id: u16| text(values.get(&id), encoding);
            let kind = match integer(values.get(&props::RECIPIENT_TYPE)) {
                Some(2) => RecipientKind::Cc,
                Some(3) => RecipientKind::Bcc,
                _ => RecipientKind::To,
            };
            let mailbox = Mailbox::new(
                string(props::DISPLAY_NAME),
                string(props::ADDRESS_TYPE),
                string(props::EMAIL_ADDRESS),
                string(props::SMTP_ADDRESS),
            );
            item.recipients.push(Recipient { kind, mailbox });
        }
    }
    if let Some(table) = message.attachment_table() {
        let columns = [props::ATTACH_LONG_FILENAME, props::ATTACH_FILENAME];
        for (id, values) in table_values(table.as_ref(), &columns) {
            let name = text(values.get(&props::ATTACH_LONG_FILENAME), encoding)
                .or_else(|| text(values.get(&props::ATTACH_FILENAME), encoding));
            item.attachments.push(AttachmentRef { id, name });
        }
    }
    item
}

/// Reads one attachment of an opened message for the rebuild.
fn load_attachment(
    opened: &OpenedMessage,
    attachment: &AttachmentRef,
    encoding: &'static Encoding,
) -> std::result::Result<LoadedAttachment, String> {
    let read = opened.read_attachment(attachment.id).map_err(|err| err.to_string())?;
    loaded(read.as_ref(), encoding)
}

/// `PidTagAttachMethod` values whose data is a link.
const BY_REFERENCE: [i64; 3] = [2, 4, 7];

fn loaded(
    attachment: &dyn Attachment,
    encoding: &'static Encoding,
) -> std::result::Result<LoadedAttachment, String> {
    let properties = attachment.properties();
    let string = |id: u16| text(properties.get(id), encoding);
    let name = string(props::ATTACH_LONG_FILENAME)
        .or_else(|| string(props::ATTACH_FILENAME))
        .or_else(|| string(props::DISPLAY_NAME));
    let content_id = string(props::ATTACH_CONTENT_ID);
    let hidden = integer(properties.get(props::ATTACHMENT_HIDDEN)) == Some(1);
    let rendered = integer(properties.get(props::ATTACH_FLAGS)).is_some_and(|flags| flags & 4 != 0);
    let content = match attachment.data() {
        Some(AttachmentData::Binary(bytes)) => AttachmentContent::Bytes(bytes.buffer().to_vec()),
        Some(AttachmentData::Message(message)) => {
            AttachmentContent::Message(Box::new(item_of(message.as_ref())))
        }
        None => {
            let method = properties.attachment_method().map(i64::from).unwrap_or(0);
            match string(props::ATTACH_LONG_PATHNAME) {
                Some(target) if BY_REFERENCE.contains(&method) => AttachmentContent::Reference(target),
                _ => return Err(format!("attachment method {method} carries no data")),
            }
        }
    };
    Ok(LoadedAttachment {
        name,
        mime_type: string(props::ATTACH_MIME_TAG),
        inline: content_id.is_some() && (hidden || rendered),
        content_id,
        content,
    })
}

/// A [`Write`] into a [`BodyBuilder`], in 64 KiB pushes (the builder spools past its threshold).
struct BodyWriter {
    builder: BodyBuilder,
    buffer: Vec<u8>,
}

const PUSH_BYTES: usize = 64 * 1024;

impl BodyWriter {
    fn new(builder: BodyBuilder) -> Self {
        BodyWriter { builder, buffer: Vec::with_capacity(PUSH_BYTES) }
    }

    fn finish(mut self) -> Result<mailmove_core::MessageBody> {
        self.builder.push(&self.buffer)?;
        self.builder.finish()
    }
}

impl Write for BodyWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= PUSH_BYTES {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.builder.push(&self.buffer).map_err(io::Error::other)?;
        self.buffer.clear();
        Ok(())
    }
}
