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
/// Where the system gives transparent huge pages only to memory that asks for them, it also
/// asks for them under the main thread's heap (see `huge_pages`); the pool's threads ask
/// for their own with [`tune_thread_heap`].
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
        if let Some(huge_page) = huge_pages::when_advised() {
            huge_pages::grow_main_heap(huge_page, HEAP_PAD as usize);
        }
    }
}

/// Asks for transparent huge pages under the heap of the calling thread's glibc arena (see
/// [`tune_allocator_for_one_run`]). For each thread of the binaries' pool, as it starts;
/// a library leaves the allocator to its caller.
pub fn tune_thread_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
    if let Some(huge_page) = huge_pages::when_advised() {
        huge_pages::advise_thread_heap(huge_page);
    }
}

/// Transparent huge pages under glibc's heaps, where the system gives them only to memory
/// that asks (`madvise` mode, as on this project's reference machine and on Ubuntu).
///
/// A run's memory is mostly fresh heap: the records and import tables of the reading
/// threads, then the tail's lists, tries and output buffers. Each 4 KiB page of it costs a
/// page fault, 1.3–1.7 µs each on the 2-core reference machine (zeroing, accounting and
/// the fault itself), and a run made 4,900 of them on bookworm-amd64 and 6,200 on the
/// `.ko.zst` tree. A 2 MiB page costs about 0.1 ms: a seventh of its 512 small pages.
/// glibc does the same when asked to (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`), but only
/// through the environment the process started with, which a drop-in `depmod` cannot set.
///
/// Two kinds of heap take the advice:
/// * the main arena's, which the `main` thread uses: grown once by [`HEAP_PAD`] when the
///   process starts, and the new part advised;
/// * each pool thread's arena: glibc reserves it as one mapping of 64 MiB aligned to its
///   size (`HEAP_MAX_SIZE` on 64-bit targets), found from an allocation the thread makes.
///   The first 2 MiB of it, in use by then, stay in small pages: making that huge page at
///   once (`MADV_COLLAPSE`) saved 500 faults a thread but cost more than that at start,
///   which the short runs of `--cache` felt most (see `docs/performance.md`).
///
/// All of it is advice: with the mode `always` there is nothing to ask for, with `never`
/// (or no THP support) nothing is done, and a kernel that refuses changes nothing else.
/// On a virtual machine whose host takes back the guest's free memory (free page
/// reporting), a huge page can cost more than its small pages would; on the reference
/// machine, which is one, runs were faster in 23 of 30 rounds all the same.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod huge_pages {
    use std::sync::OnceLock;

    /// The size glibc reserves for each heap of a thread arena, and its alignment, on 64-bit
    /// targets (`HEAP_MAX_SIZE`, twice the largest `M_MMAP_THRESHOLD`).
    #[cfg(target_pointer_width = "64")]
    const THREAD_HEAP_RESERVATION: usize = 64 << 20;

    /// A request that glibc serves from the thread's own arena: past the sizes its
    /// per-thread cache holds (which may hand back memory another thread freed), under
    /// the smallest threshold for a mapping of its own.
    #[cfg(target_pointer_width = "64")]
    const ARENA_PROBE: usize = 4 << 10;

    /// The huge page size if the system gives huge pages to memory that asks for them
    /// (`madvise` mode), read once.
    pub(super) fn when_advised() -> Option<usize> {
        static ADVISED: OnceLock<Option<usize>> = OnceLock::new();
        *ADVISED.get_or_init(|| {
            let sysfs = "/sys/kernel/mm/transparent_hugepage";
            let mode = std::fs::read_to_string(format!("{sysfs}/enabled")).ok()?;
            if !mode.contains("[madvise]") {
                return None;
            }
            let size = std::fs::read_to_string(format!("{sysfs}/hpage_pmd_size")).ok()?;
            let size: usize = size.trim().parse().ok()?;
            size.is_power_of_two().then_some(size)
        })
    }

    /// Grows the main arena's heap by `pad` now (glibc's `M_TOP_PAD` is `pad` already, so
    /// one growth is enough) and advises huge pages for the part that is new. Does nothing
    /// where the main arena does not grow by `sbrk`.
    pub(super) fn grow_main_heap(huge_page: usize, pad: usize) {
        // SAFETY: sbrk(0) only reads the program break. The blocks are glibc's to give and
        // are given back; madvise only gives advice about pages of this process.
        unsafe {
            let before = libc::sbrk(0) as usize;
            if before == usize::MAX {
                return;
            }
            let mut blocks = [std::ptr::null_mut(); 4];
            for block in blocks.iter_mut() {
                *block = libc::malloc(64 << 10);
                if (libc::sbrk(0) as usize).saturating_sub(before) >= pad {
                    break;
                }
            }
            let end = libc::sbrk(0) as usize;
            let start = before.next_multiple_of(huge_page);
            if end > start {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
            for block in blocks {
                libc::free(block);
            }
        }
    }

    /// Advises huge pages for the heap of the calling thread's arena: the 64 MiB around one
    /// of the thread's allocations, if they are all mapped (the thread has an arena of its
    /// own, not the main one, whose neighbours are the program's own mappings).
    #[cfg(target_pointer_width = "64")]
    pub(super) fn advise_thread_heap(huge_page: usize) {
        if huge_page >= THREAD_HEAP_RESERVATION {
            return;
        }
        // SAFETY: the probe is glibc's to give and is given back; mincore only reports
        // which pages of the range are resident (failing if some are not mapped), into a
        // vector of one byte per page; madvise only gives advice about pages of this
        // process.
        unsafe {
            let probe = libc::malloc(ARENA_PROBE);
            if probe.is_null() {
                return;
            }
            let heap = ((probe as usize) & !(THREAD_HEAP_RESERVATION - 1)) as *mut libc::c_void;
            libc::free(probe);
            let page = usize::try_from(libc::sysconf(libc::_SC_PAGESIZE)).unwrap_or(0);
            if page == 0 {
                return;
            }
            let mut resident = vec![0u8; THREAD_HEAP_RESERVATION.div_ceil(page)];
            if libc::mincore(heap, THREAD_HEAP_RESERVATION, resident.as_mut_ptr()) == 0 {
                libc::madvise(heap, THREAD_HEAP_RESERVATION, libc::MADV_HUGEPAGE);
            }
        }
    }
}
