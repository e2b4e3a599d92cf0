//! The C allocator's settings for a process that makes one depmod run and exits.

/// Extra heap the C allocator asks the kernel for whenever a heap grows, and keeps when it
/// shrinks.
const HEAP_PAD: i32 = 16 << 20;

/// Sets glibc's `M_TOP_PAD` to `HEAP_PAD` (16 MiB): each arena's heap then grows in 16 MiB steps
/// and keeps 16 MiB when memory is freed, instead of growing and shrinking by what each
/// allocation needs.
///
/// A run allocates and frees hundreds of thousands of small buffers on every core. With
/// glibc's default, the heaps of the reading threads grow by thousands of `mprotect` calls,
/// and freed memory is handed back and faulted in again. The padded heap only reserves
/// address space: pages count once touched, and the peak resident set of a run stayed the
/// same on the bookworm-amd64, bookworm-arm64 (`.ko.zst`) and trixie-amd64 (`.ko.xz`)
/// trees. A run there made about 20% fewer page faults and took 5.6% less wall time on
/// bookworm-amd64 and 7.4% less on the `.ko.zst` tree (paired runs; see
/// `docs/performance.md`).
///
/// For the binaries' `main` only: it changes the allocator of the whole process, which a
/// library must leave to its caller. Elsewhere than glibc it does nothing.
pub fn tune_allocator_for_one_run() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a parameter of glibc's allocator; it is called before
        // any thread is started.
        unsafe {
            libc::mallopt(libc::M_TOP_PAD, HEAP_PAD);
        }
    }
}
