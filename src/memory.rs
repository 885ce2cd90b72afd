//! Memory the process freed, given back to the system.

/// Returns the memory freed by every thread's allocator arena to the
/// system. glibc keeps what a thread freed in that thread's arena; after
/// landing (bodies stored, parsed and normalized on the blocking pool's
/// threads) that is a few hundred MiB that the batches' computation, on
/// other threads, would add to. Elsewhere a no-op.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes no pointers and only releases
        // free pages of the allocator's own arenas; it is thread-safe.
        unsafe {
            malloc_trim(0);
        }
    }
}
