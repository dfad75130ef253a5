//! Locking as the control plane does it everywhere.

/// Locks `m`, taking the data over if a thread panicked holding it (the
/// state machines behind these locks stay consistent between calls).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
