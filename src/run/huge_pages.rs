//! Transparent huge pages for the C allocator's heaps, when the kernel has them free.
//!
//! A run touches about 25 MB of fresh heap, and with 4 KiB pages each page costs a page
//! fault: on bookworm-amd64 about 6,600 faults, about an eighth of the run's CPU time. With
//! the kernel's default THP mode (`madvise`), a heap is backed by 2 MiB pages only if the
//! process asks for them with `madvise(MADV_HUGEPAGE)`. glibc does that itself only when
//! started with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, which a program cannot set for
//! itself once running, so this module asks for the heaps a run uses:
//!
//! * the main heap (the one `brk` grows), in [`advise_main_heap`], from the process's main
//!   thread, for the padded step it grows by first;
//! * each worker thread's heap, in [`advise_thread_heap`], from the worker itself as it
//!   starts. glibc places a thread arena's heap at an address aligned to its maximum size
//!   ([`THREAD_HEAP_SPAN`]), so a block allocated there gives the heap's start.
//!
//! With a huge page free, the kernel fills a fault with it at once. Without one, it would
//! compact or reclaim memory first (the `defrag` mode `madvise` that kernels default to),
//! which can stall a run on a busy machine for longer than the faults it saves. So nothing
//! is advised unless the kernel's free lists hold [`MIN_FREE_HUGE_PAGES`] pages of that
//! size already ([`enough_free_huge_pages`]).
//!
//! None of this changes what a run computes: the advice only changes how the kernel backs
//! memory, and a wrong address or a refused call leaves it backed by small pages.

/// Size and alignment of the heap of a glibc thread arena on 64-bit targets
/// (`HEAP_MAX_SIZE`, twice the largest mmap threshold).
const THREAD_HEAP_SPAN: usize = 64 << 20;

/// Free huge pages the kernel must already hold before any heap is advised: the heaps of a
/// run on the real trees fill about twenty, so a run leaves most of them to others.
const MIN_FREE_HUGE_PAGES: u64 = 64;

/// Block size that [`advise_main_heap`] allocates to make the main heap grow: below glibc's
/// mmap threshold (128 KiB), so it comes from the heap, and large enough that a few of them
/// exhaust what the heap has left from before `main`.
const MAIN_HEAP_PROBE: usize = 96 << 10;

/// The number of free blocks of `order` or larger in `/proc/buddyinfo` text, counted in
/// blocks of `order` (a free block of `order + 1` holds two). Lines that do not parse are
/// skipped.
#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")),
    allow(dead_code)
)]
fn free_blocks_of_order(buddyinfo: &str, order: u32) -> u64 {
    let mut total: u64 = 0;
    for line in buddyinfo.lines() {
        // "Node 0, zone   Normal   7246   6019 ...": counts of free blocks of order 0, 1, ...
        let Some((_, counts)) = line.split_once("zone") else {
            continue;
        };
        let counts = counts.split_whitespace().skip(1);
        for (block_order, count) in counts.enumerate() {
            let Ok(count) = count.parse::<u64>() else {
                break;
            };
            if let Some(shift) = (block_order as u32).checked_sub(order) {
                total = total.saturating_add(count.saturating_mul(1u64 << shift.min(63)));
            }
        }
    }
    total
}

/// The order (log2 of the number of base pages) of a huge page of `huge_page_bytes` on a
/// system with pages of `page_bytes`, or `None` if the sizes are not powers of two.
#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")),
    allow(dead_code)
)]
fn huge_page_order(huge_page_bytes: u64, page_bytes: u64) -> Option<u32> {
    if !huge_page_bytes.is_power_of_two() || !page_bytes.is_power_of_two() {
        return None;
    }
    huge_page_bytes
        .trailing_zeros()
        .checked_sub(page_bytes.trailing_zeros())
}

/// Whether the kernel holds at least [`MIN_FREE_HUGE_PAGES`] free blocks of its THP size, so
/// that advised heaps fault in huge pages without compaction. False whenever the sizes or
/// free lists cannot be read (no `/proc` or `/sys` in a chroot, THP not built in).
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
fn enough_free_huge_pages() -> bool {
    let read = |path| std::fs::read_to_string(path).ok();
    let Some(huge_page_bytes) = read("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
        .and_then(|text| text.trim().parse::<u64>().ok())
    else {
        return false;
    };
    // SAFETY: sysconf only reads a system constant.
    let page_bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let Some(order) = u64::try_from(page_bytes)
        .ok()
        .and_then(|page_bytes| huge_page_order(huge_page_bytes, page_bytes))
    else {
        return false;
    };
    read("/proc/buddyinfo")
        .is_some_and(|text| free_blocks_of_order(&text, order) >= MIN_FREE_HUGE_PAGES)
}

/// Advises huge pages for the main heap and for the heap of each thread of rayon's global
/// pool, if the kernel has huge pages free ([`enough_free_huge_pages`]).
///
/// Builds rayon's global pool (with its default size and `RAYON_NUM_THREADS`) so that each
/// worker advises its heap as it starts; does nothing if the pool exists already. Call it
/// from `main`, after setting `M_TOP_PAD` and before anything uses rayon. Elsewhere than
/// 64-bit glibc Linux it does nothing.
#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")),
    allow(dead_code)
)]
pub(crate) fn advise_heaps() {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
    if enough_free_huge_pages() {
        advise_main_heap();
        // An error means the pool was built already: its workers keep small pages.
        let _ = rayon::ThreadPoolBuilder::new()
            .start_handler(|_| advise_thread_heap())
            .build_global();
    }
}

/// Makes the main heap grow by its padded step and advises huge pages for the part of it
/// that starts on a huge-page boundary.
///
/// The heap grows when a block does not fit in what is left of it; with `M_TOP_PAD` set, it
/// grows by the block plus the pad, and freeing the blocks again leaves the pad in place.
/// Later growth is not advised: the kernel makes it a new mapping without the advice.
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
fn advise_main_heap() {
    const HUGE_PAGE_ALIGN: usize = 2 << 20;
    // SAFETY: sbrk(0) only reads the current end of the heap; the blocks come from malloc
    // and are freed here, null or not; madvise changes only how the range is backed, and
    // fails harmlessly on a range that is not mapped.
    unsafe {
        let before = libc::sbrk(0) as usize;
        let mut held = [std::ptr::null_mut(); 3];
        for slot in &mut held {
            *slot = libc::malloc(MAIN_HEAP_PROBE);
            if libc::sbrk(0) as usize != before {
                break;
            }
        }
        for block in held {
            libc::free(block);
        }
        // After the frees, which hand back what exceeds the pad.
        let after = libc::sbrk(0) as usize;
        let start = before.next_multiple_of(HUGE_PAGE_ALIGN);
        if after > start {
            libc::madvise(
                start as *mut libc::c_void,
                after - start,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

/// Advises huge pages for the heap of the calling thread's arena, found from a small block
/// allocated there.
///
/// A thread's first blocks may still come from the main heap (below the end of the `brk`
/// heap), so up to four are allocated until one lies above it. If none does (the thread
/// shares the main arena), nothing is advised.
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
fn advise_thread_heap() {
    // SAFETY: as in advise_main_heap; the heap start is derived from glibc's alignment of
    // thread heaps, and a wrong one only advises (or fails to advise) another range.
    unsafe {
        let main_heap_end = libc::sbrk(0) as usize;
        let mut held = [std::ptr::null_mut(); 4];
        let mut heap_start = None;
        for slot in &mut held {
            *slot = libc::malloc(256);
            if *slot as usize > main_heap_end {
                heap_start = Some(*slot as usize & !(THREAD_HEAP_SPAN - 1));
                break;
            }
        }
        for block in held {
            libc::free(block);
        }
        if let Some(start) = heap_start {
            libc::madvise(
                start as *mut libc::c_void,
                THREAD_HEAP_SPAN,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDDYINFO: &str = "\
Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3 
Node 0, zone    DMA32      2      2      3      2      3      2      1      4      4      2    752 
Node 0, zone   Normal   7246   6019   4813   2391   1041    426    422    788    477    354   1002 
";

    #[test]
    fn counts_free_blocks_of_an_order_and_above_in_that_order() {
        // Order 9: (1 + 2 + 354) + 2·(3 + 752 + 1002) = 357 + 3514.
        assert_eq!(free_blocks_of_order(BUDDYINFO, 9), 357 + 3514);
        assert_eq!(free_blocks_of_order(BUDDYINFO, 10), 3 + 752 + 1002);
    }

    #[test]
    fn free_blocks_skip_lines_that_do_not_parse() {
        assert_eq!(free_blocks_of_order("", 9), 0);
        assert_eq!(free_blocks_of_order("garbage\nzone\n", 9), 0);
        assert_eq!(free_blocks_of_order("Node 0, zone Normal 1 2 x 4", 1), 2);
        let huge = format!("Node 0, zone Normal {} {}", u64::MAX, u64::MAX);
        assert_eq!(free_blocks_of_order(&huge, 0), u64::MAX);
    }

    #[test]
    fn huge_page_order_from_sizes() {
        assert_eq!(huge_page_order(2 << 20, 4096), Some(9));
        assert_eq!(huge_page_order(512 << 20, 64 << 10), Some(13));
        assert_eq!(huge_page_order(4096, 2 << 20), None);
        assert_eq!(huge_page_order(3 << 20, 4096), None);
        assert_eq!(huge_page_order(0, 4096), None);
    }
}
