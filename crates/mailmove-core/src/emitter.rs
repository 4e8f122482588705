//! Where typed events go: one callback shared by every task of a run.
//!
//! The copy engine sends [`engine::Event`](crate::engine::Event)s through an
//! [`EventSink`](crate::engine::EventSink) and the verifier sends its own events through
//! `mailmove_verify::VerifyEvents`; both are this one [`Emitter`] over their event type, so
//! delivery (no listener, a closure, a channel) is written once.

use std::sync::Arc;

/// Where events of type `E` go: nowhere, a closure, or a channel. Cheap to clone (shared).
pub struct Emitter<E>(Option<Listener<E>>);

/// The shared closure behind an active [`Emitter`].
type Listener<E> = Arc<dyn Fn(&E) + Send + Sync>;

impl<E> Emitter<E> {
    /// Events are dropped.
    pub fn none() -> Self {
        Emitter(None)
    }

    /// Events go to a callback. It runs on the emitting task: keep it quick.
    pub fn callback(callback: impl Fn(&E) + Send + Sync + 'static) -> Self {
        Emitter(Some(Arc::new(callback)))
    }

    /// Emits an event.
    pub fn emit(&self, event: E) {
        if let Some(callback) = &self.0 {
            callback(&event);
        }
    }

    /// Whether anyone listens (so callers can skip building events).
    pub fn is_active(&self) -> bool {
        self.0.is_some()
    }
}

impl<E: Clone + Send + 'static> Emitter<E> {
    /// Events go to an unbounded channel; the receiver is a stream of events.
    pub fn channel() -> (Self, tokio::sync::mpsc::UnboundedReceiver<E>) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        (
            Emitter::callback(move |event: &E| {
                let _ = sender.send(event.clone());
            }),
            receiver,
        )
    }
}

impl<E> Clone for Emitter<E> {
    fn clone(&self) -> Self {
        Emitter(self.0.clone())
    }
}

impl<E> Default for Emitter<E> {
    fn default() -> Self {
        Emitter::none()
    }
}

impl<E> std::fmt::Debug for Emitter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Emitter(callback)" } else { "Emitter(none)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_to_a_channel_and_drops_without_listener() {
        let (events, mut receiver) = Emitter::<u32>::channel();
        assert!(events.is_active());
        events.clone().emit(7);
        assert_eq!(receiver.try_recv().unwrap(), 7);
        let none = Emitter::<u32>::default();
        assert!(!none.is_active());
        none.emit(1);
        assert_eq!(format!("{none:?}"), "Emitter(none)");
    }
}
