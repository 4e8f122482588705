//! A custom backend in under 150 lines: a directory of `.eml` files (one sub-directory per folder
//! segment, one file per message), passing mailmove's conformance kit.
//!
//! Run: `cargo run --example eml_backend`
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use mailmove::core::{
    fingerprint, testkit, Appended, Error, ExistingMessage, FolderInfo, FolderPath, MailSink, MailSource,
    Message, MessageBody, MessageMeta, Result, SinkCapabilities, SourceCapabilities, SourceKey,
};

/// Messages as `ROOT/<segment>/<segment>/<n>.eml`. No flags or dates: the capabilities say so,
/// and the kit then does not expect them.
#[derive(Debug)]
struct EmlDirectory {
    root: PathBuf,
}

impl EmlDirectory {
    /// The directory of a folder; refuses names that could leave the root.
    fn dir(&self, folder: &FolderPath) -> Result<PathBuf> {
        let mut dir = self.root.clone();
        for segment in folder.segments() {
            if segment == "." || segment == ".." || segment.contains(['/', '\\', '\0']) {
                return Err(Error::InvalidFolderName {
                    name: folder.to_string(),
                    reason: "unsafe segment".into(),
                });
            }
            dir.push(segment);
        }
        Ok(dir)
    }

    /// Message files of a folder, sorted by number (the key).
    fn files(dir: &Path) -> Vec<(u64, PathBuf)> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.path().file_stem()?.to_str()?.parse().ok()?, e.path())))
            .filter(|(_, p)| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
    }

    fn walk(&self, dir: &Path, segments: Vec<String>, out: &mut Vec<FolderInfo>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                let mut child = segments.clone();
                child.push(entry.file_name().to_string_lossy().into_owned());
                out.push(FolderInfo::new(FolderPath::new(child.clone())));
                self.walk(&entry.path(), child, out);
            }
        }
    }
}

fn io(err: std::io::Error) -> Error {
    Error::io("eml directory", err)
}

#[async_trait]
impl MailSource for EmlDirectory {
    fn identity(&self) -> String {
        format!("eml:{}", self.root.display())
    }
    fn capabilities(&self) -> SourceCapabilities {
        let mut capabilities = SourceCapabilities::default();
        (capabilities.flags, capabilities.keywords, capabilities.internal_dates) = (false, false, false);
        capabilities
    }
    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        let mut out = Vec::new();
        self.walk(&self.root, Vec::new(), &mut out);
        Ok(out)
    }
    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        _after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        let files = self.dir(folder).map(|dir| Self::files(&dir));
        let metas: Vec<Result<MessageMeta>> = match files {
            Ok(files) => files
                .into_iter()
                .map(|(n, p)| Ok(MessageMeta::new(n.to_string(), p.metadata().map_err(io)?.len())))
                .collect(),
            Err(err) => vec![Err(err)],
        };
        stream::iter(metas).boxed()
    }
    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        let Ok(dir) = self.dir(folder) else { return stream::empty().boxed() };
        stream::iter(keys.iter().filter_map(move |key| {
            let bytes = std::fs::read(dir.join(format!("{}.eml", key.as_str().parse::<u64>().ok()?))).ok()?;
            Some(Ok(Message::new(MessageMeta::new(key.clone(), 0), MessageBody::from_bytes(bytes))))
        }))
        .boxed()
    }
}

#[async_trait]
impl MailSink for EmlDirectory {
    fn identity(&self) -> String {
        MailSource::identity(self)
    }
    fn capabilities(&self) -> SinkCapabilities {
        let mut capabilities = SinkCapabilities::default();
        (capabilities.flags, capabilities.keywords, capabilities.internal_dates) = (false, false, false);
        capabilities
    }
    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        MailSource::list_folders(self).await
    }
    async fn create_folder(&self, folder: &FolderPath) -> Result<()> {
        std::fs::create_dir_all(self.dir(folder)?).map_err(io)
    }
    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        let dir = self.dir(folder)?;
        let next = Self::files(&dir).last().map_or(1, |(n, _)| n + 1);
        // Write aside, then rename: a crash never leaves half a message under a real name.
        let temporary = dir.join(format!(".{next}.tmp"));
        std::io::copy(&mut message.body.reader()?, &mut std::fs::File::create(&temporary).map_err(io)?)
            .map_err(io)?;
        std::fs::File::open(&temporary).and_then(|f| f.sync_all()).map_err(io)?;
        std::fs::rename(&temporary, dir.join(format!("{next}.eml"))).map_err(io)?;
        Ok(Appended::with_key(next.to_string()))
    }
    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        let files = self.dir(folder).map(|dir| Self::files(&dir)).unwrap_or_default();
        stream::iter(files.into_iter().map(|(n, path)| {
            let bytes = std::fs::read(&path).map_err(io)?;
            Ok(ExistingMessage::new(
                Some(n.to_string()),
                bytes.len() as u64,
                fingerprint::strict_of_bytes(&bytes),
            ))
        }))
        .boxed()
    }
    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        std::fs::File::open(self.dir(folder)?).and_then(|dir| dir.sync_all()).map_err(io)
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let fresh = || -> std::io::Result<(tempfile::TempDir, EmlDirectory)> {
        let dir = tempfile::tempdir()?;
        let store = EmlDirectory { root: dir.path().to_path_buf() };
        Ok((dir, store))
    };
    let (_a, store) = fresh()?;
    testkit::check_sink(&store).await?;
    let (_b, store) = fresh()?;
    testkit::check_round_trip(&store, &store).await?;
    let (_c, store) = fresh()?;
    testkit::check_copy_idempotent(&store).await?;
    println!("the .eml directory backend passes the conformance kit");
    Ok(())
}
