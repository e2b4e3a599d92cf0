//! Freeing large values off the critical path.

/// Frees `value` on another thread. Freeing the run's hundreds of thousands of small
/// allocations takes several milliseconds that nothing waits for: the process usually exits
/// first, and a library caller gets the memory back shortly after.
pub(crate) fn drop_in_background<T: Send + 'static>(value: T) {
    if std::thread::Builder::new()
        .spawn(move || drop(value))
        .is_err()
    {
        // Could not start a thread: the value was dropped with the closure.
    }
}
