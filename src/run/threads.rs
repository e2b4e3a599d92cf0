//! The thread pool of a process that makes one depmod run.

/// Stack of each of the pool's threads. The directory walk recurses once per directory level
/// on whichever thread lists that directory, and a tree may nest directories until their
/// paths reach `PATH_MAX` (about 2,000 levels of one-letter names), where the standard
/// 2 MiB stack overflows. Only the pages a thread touches take memory.
const STACK_SIZE: usize = 16 << 20;

/// Starts rayon's global pool with 16 MiB stacks (`STACK_SIZE`), one thread per core as
/// rayon's default pool has. For the binaries' `main` only, before anything runs on the
/// pool: a library leaves the pool to its caller. Does nothing if the pool already exists.
pub fn start_thread_pool() {
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(STACK_SIZE)
        .build_global();
}
