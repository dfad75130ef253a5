//! A provided-buffer ring (io_uring `IORING_REGISTER_PBUF_RING`): a block of
//! receive buffers the kernel picks from for multishot receives, handed back
//! by the worker once a packet has been forwarded or dropped.
//!
//! The io-uring crate exposes the ring entry layout but no owner for the
//! memory, so this small module owns both the ring and the buffers.

use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

pub struct BufRing {
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    bufs: Vec<u8>,
    buf_size: usize,
    entries: u16,
    tail: u16,
    pub group: u16,
}

// SAFETY: the ring memory is owned by this struct and only touched by the
// worker thread that owns it (and the kernel).
unsafe impl Send for BufRing {}

impl BufRing {
    /// Allocates `entries` buffers of `buf_size` bytes, registers them with
    /// `uring` as buffer group `group`, and hands all of them to the kernel.
    pub fn new(uring: &IoUring, entries: u16, buf_size: usize, group: u16) -> io::Result<Self> {
        assert!(
            entries.is_power_of_two(),
            "buffer ring size must be a power of two"
        );
        let ring_bytes = entries as usize * std::mem::size_of::<BufRingEntry>();
        // SAFETY: anonymous private mapping; page-aligned as the kernel requires.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut me = BufRing {
            ring: ring as *mut BufRingEntry,
            ring_bytes,
            bufs: vec![0u8; entries as usize * buf_size],
            buf_size,
            entries,
            tail: 0,
            group,
        };
        // SAFETY: the ring memory stays mapped until `self` is dropped, after the uring.
        unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(ring as u64, entries, group, 0)?
        };
        for bid in 0..entries {
            me.give(bid);
        }
        me.publish();
        Ok(me)
    }

    /// Queues buffer `bid` for the kernel; visible after [`publish`](Self::publish).
    pub fn give(&mut self, bid: u16) {
        let slot = (self.tail & (self.entries - 1)) as usize;
        // SAFETY: slot < entries, inside the mapping.
        let e = unsafe { &mut *self.ring.add(slot) };
        e.set_addr(self.bufs.as_ptr() as u64 + bid as u64 * self.buf_size as u64);
        e.set_len(self.buf_size as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every buffer given since the last call available to the kernel.
    pub fn publish(&self) {
        // SAFETY: the tail field lives in the first entry, which is mapped; the
        // kernel reads it with acquire semantics.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid`, for writing (a buffer the
    /// kernel handed back and that is not in the ring).
    pub fn get_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let start = bid as usize * self.buf_size;
        &mut self.bufs[start..start + len.min(self.buf_size)]
    }

    /// The first `len` bytes of buffer `bid`.
    pub fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * self.buf_size;
        &self.bufs[start..start + len.min(self.buf_size)]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping what new() mapped.
        unsafe { libc::munmap(self.ring as *mut libc::c_void, self.ring_bytes) };
    }
}
