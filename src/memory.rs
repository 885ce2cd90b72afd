//! The process's allocator, and the memory it freed given back to the
//! system.
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

/// Returns the pages every arena of the allocator holds free to the system
/// at once, instead of when they have aged (after landing, after a
/// computed batch, after the batches). Elsewhere a no-op.
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
