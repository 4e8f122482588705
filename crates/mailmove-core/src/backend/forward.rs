//! `Box<T>` and `Arc<T>` of a backend are backends: every method forwarded, defaults included
//! (a default would silently replace the wrapped backend's own implementation, so
//! `clippy::missing_trait_methods` is denied on these impls).

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use super::{ExistingIdentity, ExistingMessage, MailSink, MailSource, SinkCapabilities, SourceCapabilities};
use crate::error::Result;
use crate::flags::FlagUpdate;
use crate::folder::{FolderInfo, FolderPath};
use crate::identity::CheapIdentity;
use crate::message::{Appended, Message, MessageMeta, SourceKey};
use crate::selection::SearchCriteria;
use crate::stored::StoredCopy;

macro_rules! forward_source {
    ($wrapper:ty) => {
        // Every method is forwarded, defaults included: a default would silently replace the
        // wrapped backend's own implementation.
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: MailSource + ?Sized> MailSource for $wrapper {
            fn identity(&self) -> String {
                (**self).identity()
            }
            fn capabilities(&self) -> SourceCapabilities {
                (**self).capabilities()
            }
            async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
                (**self).list_folders().await
            }
            fn list_messages<'a>(
                &'a self,
                folder: &'a FolderPath,
                after: Option<&'a SourceKey>,
            ) -> BoxStream<'a, Result<MessageMeta>> {
                (**self).list_messages(folder, after)
            }
            fn fetch<'a>(
                &'a self,
                folder: &'a FolderPath,
                keys: &'a [SourceKey],
            ) -> BoxStream<'a, Result<Message>> {
                (**self).fetch(folder, keys)
            }
            fn identities<'a>(
                &'a self,
                folder: &'a FolderPath,
                keys: &'a [SourceKey],
            ) -> Option<BoxStream<'a, Result<(SourceKey, CheapIdentity)>>> {
                (**self).identities(folder, keys)
            }
            fn search<'a>(
                &'a self,
                folder: &'a FolderPath,
                criteria: &'a SearchCriteria,
            ) -> Option<BoxStream<'a, Result<SourceKey>>> {
                (**self).search(folder, criteria)
            }
            fn warnings(&self) -> Vec<String> {
                (**self).warnings()
            }
        }
    };
}

macro_rules! forward_sink {
    ($wrapper:ty) => {
        // Every method is forwarded, defaults included (see `forward_source!`).
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: MailSink + ?Sized> MailSink for $wrapper {
            fn identity(&self) -> String {
                (**self).identity()
            }
            fn capabilities(&self) -> SinkCapabilities {
                (**self).capabilities()
            }
            async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
                (**self).list_folders().await
            }
            async fn create_folder(&self, folder: &FolderPath) -> Result<()> {
                (**self).create_folder(folder).await
            }
            async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
                (**self).append(folder, message).await
            }
            fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
                (**self).list_existing(folder)
            }
            fn list_existing_knowing<'a>(
                &'a self,
                folder: &'a FolderPath,
                known: &'a dyn super::KnownCopies,
            ) -> BoxStream<'a, Result<ExistingMessage>> {
                (**self).list_existing_knowing(folder, known)
            }
            fn list_identities<'a>(
                &'a self,
                folder: &'a FolderPath,
            ) -> Option<BoxStream<'a, Result<ExistingIdentity>>> {
                (**self).list_identities(folder)
            }
            async fn flush(&self, folder: &FolderPath) -> Result<()> {
                (**self).flush(folder).await
            }
            fn begin_flush(&self, folder: &FolderPath) -> Option<BoxFuture<'static, Result<()>>> {
                (**self).begin_flush(folder)
            }
            fn append_batch(
                &self,
                folder: &FolderPath,
                messages: &[&Message],
            ) -> Option<BoxFuture<'static, Vec<Result<Appended>>>> {
                (**self).append_batch(folder, messages)
            }
            async fn stored_copies(&self, folder: &FolderPath) -> Result<Vec<StoredCopy>> {
                (**self).stored_copies(folder).await
            }
            async fn subscribe(&self, folder: &FolderPath) -> Result<()> {
                (**self).subscribe(folder).await
            }
            async fn quota(&self) -> Result<Option<crate::Quota>> {
                (**self).quota().await
            }
            async fn remove(&self, folder: &FolderPath, dest_key: &str) -> Result<()> {
                (**self).remove(folder, dest_key).await
            }
            async fn move_copy(
                &self,
                from: &FolderPath,
                dest_key: &str,
                to: &FolderPath,
            ) -> Result<Option<String>> {
                (**self).move_copy(from, dest_key, to).await
            }
            fn check_folder_name(&self, folder: &FolderPath) -> Result<()> {
                (**self).check_folder_name(folder)
            }
            async fn add_to_folder(
                &self,
                from: &FolderPath,
                dest_key: &str,
                to: &FolderPath,
            ) -> Result<Option<String>> {
                (**self).add_to_folder(from, dest_key, to).await
            }
            async fn update_flags(
                &self,
                folder: &FolderPath,
                updates: &[FlagUpdate],
            ) -> Result<Vec<Result<()>>> {
                (**self).update_flags(folder, updates).await
            }
        }
    };
}

forward_source!(Box<T>);
forward_source!(std::sync::Arc<T>);
forward_sink!(Box<T>);
forward_sink!(std::sync::Arc<T>);
