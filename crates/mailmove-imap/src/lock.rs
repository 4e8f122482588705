//! Locking a [`Mutex`](std::sync::Mutex) whose holder panicked: the caches and pools it guards
//! stay usable, since each update is a single insert or remove that a panic cannot leave half
//! done. The rule is the workspace's one ([`mailmove_core::sync::lock`]), re-exported for the
//! crate's base layer.

pub(crate) use mailmove_core::sync::lock;
