//! The process's allocator, the memory it freed given back to the
//! system, and what the process uses (resident memory, CPU time).
//!
//! On Linux with glibc the program allocates with jemalloc instead of
//! glibc's malloc. glibc keeps what a thread freed in that thread's arena,
//! and a run frees and allocates on many threads (landing on the blocking
//! pool, batches on their own threads, polars' pool): a national year's
//! November run peaked at 1379 MiB with glibc and 1112 MiB with jemalloc,
//! and landing ended at 937 MiB against 509 (BENCHMARKS.md).

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Gives back what the allocator holds freed when that is more than
/// `limit` bytes (all of it, as [`give_back`]), and says how much it held
/// (`None` where that cannot be read: then it gives back). Freed pages that
/// are kept are reused without the kernel zeroing them again: giving all
/// back after each computed batch of a national month cost a tenth of the
/// batches' time, the next batch faulting the same memory in again.
pub fn give_back_over(limit: usize) -> Option<usize> {
    let held = dirty_bytes();
    if held.is_none_or(|b| b > limit) {
        give_back();
    }
    held
}

/// The process's resident memory now (`VmRSS`), where the system says it
/// (Linux).
pub fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The CPU time the process has used so far, user and system, over all
/// its threads (`getrusage(RUSAGE_SELF)`; None where it cannot be read).
pub fn cpu_time() -> Option<std::time::Duration> {
    #[cfg(unix)]
    {
        // SAFETY: `getrusage` writes one `rusage` into the zeroed value it
        // is given and reads nothing else.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then_some(usage)
        }?;
        let of = |t: libc::timeval| {
            std::time::Duration::from_secs(u64::try_from(t.tv_sec).ok()?)
                .checked_add(std::time::Duration::from_micros(u64::try_from(t.tv_usec).ok()?))
        };
        of(usage.ru_utime)?.checked_add(of(usage.ru_stime)?)
    }
    #[cfg(not(unix))]
    None
}

/// The bytes every arena holds freed and not yet returned (its dirty
/// pages), fresh as of now.
fn dirty_bytes() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: NUL-terminated names; "epoch" is written a u64 (which
        // refreshes the statistics), "arenas.page" and
        // "stats.arenas.<MALLCTL_ARENAS_ALL>.pdirty" (kept without
        // jemalloc's `--enable-stats`) are read as size_t, each into a
        // value of that size with its length.
        unsafe {
            let mut epoch: u64 = 1;
            let epoch_ptr: *mut u64 = &mut epoch;
            if tikv_jemalloc_sys::mallctl(
                c"epoch".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                epoch_ptr.cast(),
                std::mem::size_of::<u64>(),
            ) != 0
            {
                return None;
            }
            let read = |name: &std::ffi::CStr| -> Option<usize> {
                let mut value: usize = 0;
                let mut len = std::mem::size_of::<usize>();
                let value_ptr: *mut usize = &mut value;
                let rc = tikv_jemalloc_sys::mallctl(name.as_ptr(), value_ptr.cast(), &mut len, std::ptr::null_mut(), 0);
                (rc == 0).then_some(value)
            };
            let page = read(c"arenas.page")?;
            let pages = read(c"stats.arenas.4096.pdirty")?;
            Some(pages * page)
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Returns the pages every arena of the allocator holds free to the system
/// at once, instead of when they have aged (after landing and after the
/// batches; after a computed batch only over a limit, see
/// [`give_back_over`]). Elsewhere a no-op.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused dirty pages.
        const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
        // SAFETY: a NUL-terminated name; purge reads and writes no value
        // (null pointers and zero length), and is thread-safe.
        let _ = unsafe {
            tikv_jemalloc_sys::mallctl(
                PURGE_ALL.as_ptr().cast(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::give_back_over;

    /// The tests here measure the process's memory: one at a time.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn the_resident_memory_grows_with_what_is_touched() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        const MIB: usize = 1 << 20;
        let before = super::resident_bytes().expect("Linux says the resident memory");
        let block = vec![1u8; 64 * MIB];
        let during = super::resident_bytes().expect("Linux says the resident memory");
        assert!(block[64 * MIB - 1] == 1);
        assert!(during >= before + 48 * MIB, "{before} then {during}");
        assert!(during < 64 * 1024 * MIB, "a resident size in bytes: {during}");
    }

    #[test]
    fn the_cpu_time_grows_with_work_on_any_thread() {
        let before = super::cpu_time().expect("Linux says the CPU time");
        // A fixed amount of arithmetic on another thread (not a wall-clock
        // span, which a loaded machine would give less CPU): 50 million
        // dependent multiplications, 150 million cycles at the least, are
        // at least ~35 ms of CPU at 4 GHz, counted for the process.
        let spin = std::thread::spawn(|| {
            let mut x = 1u64;
            for _ in 0..50_000_000u32 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
            x
        });
        spin.join().unwrap();
        let after = super::cpu_time().expect("Linux says the CPU time");
        let used = after - before;
        assert!(
            used >= std::time::Duration::from_millis(20),
            "{used:?} for 50 million multiplications"
        );
    }

    #[test]
    fn freed_memory_is_kept_up_to_the_limit_and_given_back_over_it() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        const MIB: usize = 1 << 20;
        // 64 MiB in blocks jemalloc keeps in its arenas (not one huge
        // allocation, which goes back at once), every page touched.
        let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8 + 1; MIB]).collect();
        assert!(blocks.iter().all(|b| b[MIB - 1] != 0));
        drop(blocks);
        let held = give_back_over(usize::MAX).expect("jemalloc says what it holds");
        assert!(held >= 32 * MIB, "64 MiB freed, {} MiB held", held / MIB);
        // Under the limit: kept.
        let still = give_back_over(usize::MAX).expect("jemalloc says what it holds");
        assert!(still >= 32 * MIB, "kept under the limit, {} MiB held", still / MIB);
        // Over it: given back (what it held is said, then none is).
        assert!(give_back_over(8 * MIB).expect("jemalloc says what it holds") >= 32 * MIB);
        let after = give_back_over(usize::MAX).expect("jemalloc says what it holds");
        assert!(
            after < 8 * MIB,
            "given back over the limit, {} MiB still held",
            after / MIB
        );
    }
}
