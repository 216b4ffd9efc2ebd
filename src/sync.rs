//! Locking that outlives a panic. A leaf: any layer may use it, and it uses nothing of the
//! crate.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, poisoned or not. Every critical section in this crate leaves its data
/// consistent at each step (a single insert, remove, field update or write), so a panic in
/// one of them is no reason for every later caller to panic too.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
