//! The shared C headers compiled for the host (`src/bpf/host_shim.c`).
//!
//! Exposed so tests, here and in the data plane, can check the exact C code
//! that runs in the XDP hook: struct layouts and the incremental checksum
//! update (which the data plane tests against a full recomputation).

mod ffi {
    extern "C" {
        pub fn tg_host_layout(out: *mut u64);
        pub fn tg_host_csum_update(check: u16, old: *const u16, new: *const u16, n: u32) -> u16;
    }
}

/// How many values [`layout`] returns (`TG_HOST_LAYOUT_LEN` in the shim).
pub const LAYOUT_LEN: usize = 23;

/// Sizes and offsets of the shared structs as the C compiler lays them out.
pub fn layout() -> [u64; LAYOUT_LEN] {
    let mut out = [0u64; LAYOUT_LEN];
    // SAFETY: the shim writes exactly LAYOUT_LEN values into `out`.
    unsafe { ffi::tg_host_layout(out.as_mut_ptr()) };
    out
}

/// The XDP program's incremental checksum update (RFC 1624) for words
/// changing from `old[i]` to `new[i]`, as they lie in memory.
///
/// # Panics
/// If `old` and `new` differ in length or hold more than 1024 words.
pub fn csum_update(check: u16, old: &[u16], new: &[u16]) -> u16 {
    assert_eq!(
        old.len(),
        new.len(),
        "old and new must have the same number of words"
    );
    assert!(old.len() <= 1024, "at most 1024 words per update");
    // SAFETY: both slices are valid for `len` reads.
    unsafe { ffi::tg_host_csum_update(check, old.as_ptr(), new.as_ptr(), old.len() as u32) }
}
