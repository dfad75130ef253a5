//! The shared C headers compiled for the host (`src/bpf/host_shim.c`).
//!
//! Exposed so tests, here and in the data plane, can check the exact C code
//! that runs in the XDP hook: struct layouts, the incremental checksum
//! update (which the data plane tests against a full recomputation) and the
//! RTP/RTCP quality tracking (tested against the data plane's tracker).

use crate::abi::FlowQuality;

mod ffi {
    extern "C" {
        pub fn tg_host_layout(out: *mut u64);
        pub fn tg_host_csum_update(check: u16, old: *const u16, new: *const u16, n: u32) -> u16;
        pub fn tg_host_measure(
            q: *mut super::FlowQuality,
            rev: *const super::FlowQuality,
            p: *const u8,
            len: u32,
            now_ns: u64,
            rate: u32,
        ) -> i32;
    }
}

/// How many values [`layout`] returns (`TG_HOST_LAYOUT_LEN` in the shim).
pub const LAYOUT_LEN: usize = 35;

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

/// What the program's payload classification said (`enum tg_payload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    Other,
    Rtp,
    Rtcp,
}

/// The XDP program's measurement of one UDP payload arriving at `now_ns` on
/// a flow of clock `rate` Hz, applied to `q`; `reverse` is the reverse
/// flow's state (for the RTT of a report naming its last SR).
///
/// # Panics
/// If `payload` is longer than `u32::MAX` bytes.
pub fn measure(
    q: &mut FlowQuality,
    reverse: Option<&FlowQuality>,
    payload: &[u8],
    now_ns: u64,
    rate: u32,
) -> Measured {
    let len = u32::try_from(payload.len()).expect("payload under 4 GiB");
    let rev = reverse.map_or(std::ptr::null(), |r| r as *const FlowQuality);
    // SAFETY: q and rev are valid structs of the C layout (checked by the
    // layout test); the shim reads at most `len` bytes of `payload`.
    match unsafe { ffi::tg_host_measure(q, rev, payload.as_ptr(), len, now_ns, rate) } {
        1 => Measured::Rtp,
        2 => Measured::Rtcp,
        _ => Measured::Other,
    }
}
