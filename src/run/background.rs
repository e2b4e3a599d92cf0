//! Freeing large values off the critical path.

use std::sync::mpsc::{self, Sender};
use std::sync::OnceLock;

/// A value waiting to be dropped.
type Garbage = Box<dyn Send>;

/// The queue of the thread that drops values; `None` if that thread could not be started.
static DROPPER: OnceLock<Option<Sender<Garbage>>> = OnceLock::new();

/// Frees `value` on another thread. Freeing the run's hundreds of thousands of small
/// allocations, or a replaced index file whose pages the filesystem must evict, takes
/// milliseconds that nothing waits for: the process usually exits first, and a library
/// caller gets the memory back shortly after.
///
/// Values are dropped in the order given, by one thread started on first use that stays
/// for the life of the process. A thread per value cost more than the drops it moved: each
/// start maps a stack, and each exit unmaps the thread's signal stack and releases its
/// stack's pages, and both make the kernel flush the other cores' TLBs.
pub(crate) fn drop_in_background<T: Send + 'static>(value: T) {
    match DROPPER.get_or_init(start_dropper) {
        // If the thread is gone, the value comes back in the error and is dropped here.
        Some(queue) => drop(queue.send(Box::new(value))),
        None => drop(value),
    }
}

/// Starts the thread that drops what is queued for it.
fn start_dropper() -> Option<Sender<Garbage>> {
    let (queue, garbage) = mpsc::channel::<Garbage>();
    std::thread::Builder::new()
        .name("depmod-rs-free".into())
        .spawn(move || garbage.into_iter().for_each(drop))
        .ok()?;
    Some(queue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn every_value_handed_over_is_dropped() {
        let dropped = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            drop_in_background(Counted(Arc::clone(&dropped)));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while dropped.load(Ordering::SeqCst) < 100 {
            assert!(Instant::now() < deadline, "values were not dropped");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
