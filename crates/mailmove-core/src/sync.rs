//! Locking that survives a panic elsewhere.
//!
//! mailmove's mutexes guard plain data (lists of failures, counters, a connection) whose every
//! update is complete before the guard is dropped, so a panic in another task cannot leave them
//! half-changed. A poisoned lock therefore carries no information worth stopping for: [`lock`]
//! takes the guard either way, and every crate uses it instead of writing the recovery inline.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, ignoring poisoning (see the [module docs](self) for why that is sound here).
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_yields_its_data() {
        let mutex = std::sync::Arc::new(Mutex::new(1));
        let clone = mutex.clone();
        let _ = std::thread::spawn(move || {
            let _guard = clone.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(mutex.is_poisoned());
        *lock(&mutex) += 1;
        assert_eq!(*lock(&mutex), 2);
    }
}
