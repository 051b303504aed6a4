//! The memory allocator of smppgw's programs: jemalloc with one arena.
//!
//! glibc's malloc spent a quarter of a throughput run's CPU in malloc/free,
//! much of it waiting on arena locks: the store's checkpoint, sled's
//! deferred frees and frames crossing tasks free on one thread what another
//! allocated. jemalloc's per-thread caches hand frees back in batches; one
//! arena keeps the retained memory low (a few arenas each keep their own
//! free pages), and dirty pages are returned after a second
//! (`benches/RESULTS.md` §19: +30-40 % messages/s, and the daemon with
//! 100k open conversations 3-4.5 MiB below glibc).
//!
//! A library cannot choose the allocator of the programs that use it, so
//! each program of this crate (the `smppgw` binary and the benchmarks)
//! invokes [`crate::jemalloc!`] once. The settings are compiled
//! in ([`SETTINGS`]); `_RJEM_MALLOC_CONF` in the environment overrides them
//! (jemalloc reads it after the compiled-in string).

/// jemalloc, for `#[global_allocator]`.
pub use tikv_jemallocator::Jemalloc;

/// jemalloc's settings string, as the C global `malloc_conf` it reads at
/// its first allocation.
#[repr(transparent)]
pub struct Conf(*const std::ffi::c_char);

// SAFETY: the pointer is to a string literal: immutable, 'static.
unsafe impl Sync for Conf {}

/// The settings: one arena; dirty pages returned after 1 s; none kept
/// muzzy.
pub const SETTINGS: &std::ffi::CStr = c"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0";

/// [`SETTINGS`] as jemalloc reads them.
pub const CONF: Conf = Conf(SETTINGS.as_ptr());

/// Makes jemalloc, with [`CONF`], the global allocator of the program that
/// invokes it (once, at the crate root of a binary or a benchmark).
#[macro_export]
macro_rules! jemalloc {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::alloc::Jemalloc = $crate::alloc::Jemalloc;

        /// Read by jemalloc (prefixed `_rjem_`) before its first allocation.
        #[used]
        #[unsafe(export_name = "_rjem_malloc_conf")]
        static MALLOC_CONF: $crate::alloc::Conf = $crate::alloc::CONF;
    };
}
