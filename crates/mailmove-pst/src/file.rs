//! One PST file opened read-only with `outlook-pst`, Unicode or ANSI, behind one type.
//!
//! `outlook-pst` has a type per format (`UnicodeStore`, `AnsiStore`, ...) and reads an item's
//! attachments only through the concrete message type, so the dispatch between the two formats
//! is here, once. Everything it returns is `Rc` (not `Send`): it lives on the reader thread
//! ([`crate::reader`]).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use outlook_pst::messaging::attachment::{AnsiAttachment, Attachment, UnicodeAttachment};
use outlook_pst::messaging::folder::Folder;
use outlook_pst::messaging::message::{AnsiMessage, Message, UnicodeMessage};
use outlook_pst::messaging::store::{AnsiStore, EntryId, Store, UnicodeStore};
use outlook_pst::ndb::node_id::NodeId;
use outlook_pst::{AnsiPstFile, UnicodePstFile};

/// The two PST formats `outlook-pst` reads.
pub(crate) enum PstFile {
    /// Outlook 2003 and later (64-bit, UTF-16 strings).
    Unicode(Rc<UnicodeStore>),
    /// Outlook 97–2002 (32-bit, 8-bit strings in a code page; 2 GB at most).
    Ansi(Rc<AnsiStore>),
}

/// A message opened from either format.
pub(crate) enum OpenedMessage {
    Unicode(Rc<UnicodeMessage>),
    Ansi(Rc<AnsiMessage>),
}

/// `!BDN`: the first bytes of every PST and OST file.
const MAGIC: &[u8; 4] = b"!BDN";
/// `wMagicClient` of a PST (`SM`) and of an OST (`SO`).
const CLIENT_PST: [u8; 2] = *b"SM";
const CLIENT_OST: [u8; 2] = *b"SO";

impl PstFile {
    /// Opens `path` without write access (a source never modifies what it reads), after a look
    /// at its header that turns "not a PST" and the formats `outlook-pst` cannot read into
    /// errors that say so.
    pub(crate) fn open(path: &Path) -> Result<PstFile, String> {
        let mut header = [0_u8; 12];
        File::open(path).and_then(|mut file| file.read_exact(&mut header)).map_err(|err| {
            match err.kind() {
                io::ErrorKind::UnexpectedEof => "too short to be a PST file (under 12 bytes)".to_string(),
                _ => err.to_string(),
            }
        })?;
        if &header[..4] != MAGIC {
            return Err("not a PST file (no !BDN signature at its start)".to_string());
        }
        let client = [header[8], header[9]];
        if client == CLIENT_OST {
            return Err("an OST file (Outlook's offline cache): outlook-pst 1.2 reads PST files only; \
                        export the mailbox to a PST in Outlook"
                .to_string());
        }
        if client != CLIENT_PST {
            return Err(format!("unknown PST client signature {client:02x?}"));
        }
        let reader =
            || -> io::Result<Box<BufReader<File>>> { Ok(Box::new(BufReader::new(File::open(path)?))) };
        let version = u16::from_le_bytes([header[10], header[11]]);
        let opened = match version {
            14 | 15 => AnsiPstFile::read_from(reader().map_err(|err| err.to_string())?)
                .and_then(|file| AnsiStore::read(Rc::new(file)))
                .map(PstFile::Ansi),
            23 => UnicodePstFile::read_from(reader().map_err(|err| err.to_string())?)
                .and_then(|file| UnicodeStore::read(Rc::new(file)))
                .map(PstFile::Unicode),
            36 => {
                return Err("a PST with 4 KiB pages (Outlook 2013 and later OST format), which \
                            outlook-pst 1.2 does not read"
                    .to_string())
            }
            other => return Err(format!("unknown PST format version {other}")),
        };
        opened.map_err(|err| format!("unreadable PST header or root: {err}"))
    }

    /// The store, as `outlook-pst`'s trait object.
    pub(crate) fn store(&self) -> Rc<dyn Store> {
        match self {
            PstFile::Unicode(store) => store.clone(),
            PstFile::Ansi(store) => store.clone(),
        }
    }

    /// The entry id of node `node` in this store.
    fn entry_id(&self, node: u32) -> io::Result<EntryId> {
        self.store().properties().make_entry_id(NodeId::from(node))
    }

    /// The IPM subtree: the root of the folders a user sees.
    pub(crate) fn ipm_subtree(&self) -> io::Result<Rc<dyn Folder>> {
        let store = self.store();
        let entry_id = store.properties().ipm_sub_tree_entry_id()?;
        store.open_folder(&entry_id)
    }

    /// The folder whose node id is `node`.
    pub(crate) fn open_folder(&self, node: u32) -> io::Result<Rc<dyn Folder>> {
        self.store().open_folder(&self.entry_id(node)?)
    }

    /// The message whose node id is `node`, with only `properties` read when given.
    pub(crate) fn open_message(&self, node: u32, properties: Option<&[u16]>) -> io::Result<OpenedMessage> {
        let entry_id = self.entry_id(node)?;
        Ok(match self {
            PstFile::Unicode(store) => {
                OpenedMessage::Unicode(UnicodeMessage::read(store.clone(), &entry_id, properties)?)
            }
            PstFile::Ansi(store) => {
                OpenedMessage::Ansi(AnsiMessage::read(store.clone(), &entry_id, properties)?)
            }
        })
    }
}

impl OpenedMessage {
    /// The message, as `outlook-pst`'s trait object.
    pub(crate) fn message(&self) -> &dyn Message {
        match self {
            OpenedMessage::Unicode(message) => message.as_ref(),
            OpenedMessage::Ansi(message) => message.as_ref(),
        }
    }

    /// The attachment whose sub-node id is `id` (its row id in the attachment table), data and
    /// all: `outlook-pst` reads an attachment's data whole.
    pub(crate) fn read_attachment(&self, id: u32) -> io::Result<Rc<dyn Attachment>> {
        let node = NodeId::from(id);
        Ok(match self {
            OpenedMessage::Unicode(message) => UnicodeAttachment::read(message.clone(), node, None)?,
            OpenedMessage::Ansi(message) => AnsiAttachment::read(message.clone(), node, None)?,
        })
    }
}
