//! A thin AF_XDP layer over `libc`: one [`Xsk`] is an AF_XDP socket bound to
//! one (interface, rx queue), with its own UMEM and its four rings (fill,
//! completion, rx, tx) mapped from the kernel.
//!
//! Why our own and not a crate: `xdpilone` 1.3 does this in pure Rust, but
//! it is licensed EUPL-1.2, a copyleft licence whose terms for a statically
//! linked Apache-2.0 binary we would have to settle with every distributor;
//! `libxdp`/`libbpf` bindings would bring a C dependency for what is a few
//! hundred lines of setsockopt and mmap. The kernel ABI (linux/if_xdp.h) is
//! stable and small, so Tollgate owns it here.
//!
//! What it does: registers the UMEM (`XDP_UMEM_REG`), sizes the rings, maps
//! them at the offsets the kernel reports (`XDP_MMAP_OFFSETS`), and binds,
//! trying zero-copy first and falling back to copy mode (veth, or a driver
//! without zero-copy support) unless told which; always with
//! `XDP_USE_NEED_WAKEUP`, so the kernel is only kicked (one `sendto` per
//! burst, only when the tx ring's need-wakeup flag says so). Busy polling
//! (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`) is optional.
//!
//! Rings: the kernel and this process share a producer and a consumer
//! index per ring. The side that produces writes descriptors, then stores
//! its index with Release; the side that consumes loads the other's index
//! with Acquire before reading descriptors, and stores its own with Release
//! once it is done with them. Both sides cache the other's index and only
//! reload it when the cached view runs out. Nothing here allocates, locks,
//! logs or makes a syscall per packet.
//!
//! Frames: the UMEM is cut into `frames` chunks of `frame_size` bytes
//! (aligned mode). A frame belongs to exactly one of: the free stack
//! ([`Xsk::alloc`]/[`Xsk::free`]), the fill ring, the kernel's receive path,
//! the rx ring, the caller (between [`Xsk::rx_burst`] and its fate), the tx
//! ring, or the completion ring ([`Xsk::complete`] returns them to the
//! stack).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

/// `SO_*` busy-poll options (asm-generic/socket.h; libc lacks them here).
const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// Whether to ask for zero-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Try zero-copy, else copy mode.
    Auto,
    /// Copy mode only.
    Off,
}

/// How to build one socket.
#[derive(Debug, Clone)]
pub struct XskConfig {
    /// Bytes per UMEM frame: 2048 or 4096.
    pub frame_size: u32,
    /// Frames in this socket's UMEM.
    pub frames: u32,
    /// Entries in each ring (power of two).
    pub ring_size: u32,
    pub zero_copy: ZeroCopy,
    /// `Some((usecs, budget))`: busy polling preferred for this socket.
    pub busy_poll: Option<(u32, u32)>,
}

/// An mmap'd region, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, offset: u64, anonymous: bool) -> io::Result<Mapping> {
        let (flags, fd) = if anonymous {
            (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
            )
        } else {
            (libc::MAP_SHARED | libc::MAP_POPULATE, fd)
        };
        // SAFETY: a fresh mapping; the kernel picks the address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).expect("mmap never returns NULL on success"),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what mmap returned.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One ring shared with the kernel; `T` is `u64` (fill, completion: frame
/// addresses) or `libc::xdp_desc` (rx, tx).
struct Ring<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    mask: u32,
    size: u32,
    /// Our view of the other side's index, and our own index.
    cached_other: u32,
    local: u32,
    _map: Mapping,
}

impl<T: Copy> Ring<T> {
    fn map(fd: RawFd, off: &libc::xdp_ring_offset, size: u32, pgoff: u64) -> io::Result<Self> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        let map = Mapping::new(fd, len, pgoff, false)?;
        let base = map.ptr.as_ptr();
        // SAFETY: the kernel's offsets lie inside the mapping it sized.
        let (producer, consumer, flags, descs) = unsafe {
            (
                base.add(off.producer as usize) as *const AtomicU32,
                base.add(off.consumer as usize) as *const AtomicU32,
                base.add(off.flags as usize) as *const AtomicU32,
                base.add(off.desc as usize) as *mut T,
            )
        };
        Ok(Ring {
            producer,
            consumer,
            flags,
            descs,
            mask: size - 1,
            size,
            cached_other: 0,
            local: 0,
            _map: map,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping; the kernel updates it atomically.
        unsafe { &*self.producer }
    }
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*self.consumer }
    }

    // --- as producer (fill, tx) ---

    /// Free entries, reloading the kernel's consumer index only when the
    /// cached view is short of `want`.
    fn free_entries(&mut self, want: u32) -> u32 {
        let free = self.size - self.local.wrapping_sub(self.cached_other);
        if free >= want {
            return free;
        }
        self.cached_other = self.consumer().load(Ordering::Acquire);
        self.size - self.local.wrapping_sub(self.cached_other)
    }

    /// Writes one entry at our producer position (not visible until [`Self::submit`]).
    fn push(&mut self, v: T) {
        // SAFETY: the index is masked into the ring; callers checked free_entries.
        unsafe { self.descs.add((self.local & self.mask) as usize).write(v) };
        self.local = self.local.wrapping_add(1);
    }

    /// Publishes the entries pushed so far.
    fn submit(&mut self) {
        self.producer().store(self.local, Ordering::Release);
    }

    // --- as consumer (rx, completion) ---

    fn available(&mut self) -> u32 {
        let n = self.cached_other.wrapping_sub(self.local);
        if n > 0 {
            return n;
        }
        self.cached_other = self.producer().load(Ordering::Acquire);
        self.cached_other.wrapping_sub(self.local)
    }

    fn read(&self, i: u32) -> T {
        // SAFETY: masked into the ring; entry i is published (available() said so).
        unsafe {
            self.descs
                .add((self.local.wrapping_add(i) & self.mask) as usize)
                .read()
        }
    }

    fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.consumer().store(self.local, Ordering::Release);
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: points into the live mapping.
        unsafe { &*self.flags }.load(Ordering::Acquire) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// A frame received: its address in the UMEM (start of the packet data) and length.
#[derive(Debug, Clone, Copy, Default)]
pub struct RxFrame {
    pub addr: u64,
    pub len: u32,
}

/// Counters the kernel keeps for one socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelStats {
    pub rx_dropped: u64,
    pub rx_invalid: u64,
    pub tx_invalid: u64,
    pub rx_ring_full: u64,
    pub fill_ring_empty: u64,
    pub tx_ring_empty: u64,
}

/// One AF_XDP socket with its UMEM, bound to one queue of one interface.
pub struct Xsk {
    // Field order: rings are unmapped, then the socket closed, then the UMEM.
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    fd: OwnedFd,
    umem: Mapping,
    frame_size: u32,
    free: Vec<u64>,
    /// Entries pushed on the tx ring but not yet submitted.
    tx_pending: u32,
    pub ifindex: u32,
    pub queue: u32,
    pub zero_copy: bool,
}

// SAFETY: the raw pointers point into mappings the Xsk owns; it is used by
// one thread at a time (built on the control thread, moved to its worker).
unsafe impl Send for Xsk {}

fn check(r: libc::c_int, what: &str) -> io::Result<()> {
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

fn setopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: &T,
    what: &str,
) -> io::Result<()> {
    // SAFETY: v is a valid T for the option's size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    check(r, what)
}

impl Xsk {
    /// Opens a socket on (`ifindex`, `queue`): zero-copy if `cfg` allows and
    /// the driver can, else copy mode.
    pub fn open(cfg: &XskConfig, ifindex: u32, queue: u32) -> io::Result<Xsk> {
        if cfg.zero_copy == ZeroCopy::Auto {
            match Self::open_mode(cfg, ifindex, queue, libc::XDP_ZEROCOPY) {
                Ok(x) => return Ok(x),
                Err(e) => {
                    tracing::debug!(ifindex, queue, error = %e, "no zero-copy AF_XDP here; copy mode")
                }
            }
        }
        Self::open_mode(cfg, ifindex, queue, libc::XDP_COPY)
    }

    fn open_mode(cfg: &XskConfig, ifindex: u32, queue: u32, mode: u16) -> io::Result<Xsk> {
        assert!(cfg.ring_size.is_power_of_two() && cfg.frame_size.is_power_of_two());
        // SAFETY: socket(2) returns a new descriptor or -1.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("socket(AF_XDP): {e}")));
        }
        // SAFETY: a fresh descriptor we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem_len = cfg.frames as usize * cfg.frame_size as usize;
        let umem = Mapping::new(-1, umem_len, 0, true)
            .map_err(|e| io::Error::new(e.kind(), format!("UMEM of {umem_len} bytes: {e}")))?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: cfg.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setopt(raw, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        let n = cfg.ring_size;
        for (opt, what) in [
            (libc::XDP_UMEM_FILL_RING, "fill ring"),
            (libc::XDP_UMEM_COMPLETION_RING, "completion ring"),
            (libc::XDP_RX_RING, "rx ring"),
            (libc::XDP_TX_RING, "tx ring"),
        ] {
            setopt(raw, libc::SOL_XDP, opt, &n, what)?;
        }
        let off = mmap_offsets(raw)?;
        let fill = Ring::map(raw, &off.fr, n, libc::XDP_UMEM_PGOFF_FILL_RING)?;
        let comp = Ring::map(raw, &off.cr, n, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?;
        let rx = Ring::map(raw, &off.rx, n, libc::XDP_PGOFF_RX_RING as u64)?;
        let tx = Ring::map(raw, &off.tx, n, libc::XDP_PGOFF_TX_RING as u32 as u64)?;

        bind(raw, ifindex, queue, mode)?;

        if let Some((usecs, budget)) = cfg.busy_poll {
            // A kernel without these options still relays, without busy polling.
            if let Err(e) = busy_poll(raw, usecs, budget) {
                tracing::warn!(ifindex, queue, error = %e, "AF_XDP socket without busy polling");
            }
        }

        let free = (0..cfg.frames as u64)
            .rev()
            .map(|i| i * cfg.frame_size as u64)
            .collect();
        let mut x = Xsk {
            fill,
            comp,
            rx,
            tx,
            fd,
            umem,
            frame_size: cfg.frame_size,
            free,
            tx_pending: 0,
            ifindex,
            queue,
            zero_copy: mode == libc::XDP_ZEROCOPY,
        };
        // Half the frames wait in the fill ring; the rest serve copies and
        // the free stack's slack.
        x.refill((cfg.frames / 2).min(n));
        Ok(x)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Frames in the free stack.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Moves up to `max` free frames into the fill ring.
    pub fn refill(&mut self, max: u32) {
        let n = self
            .fill
            .free_entries(max)
            .min(max)
            .min(self.free.len() as u32);
        if n == 0 {
            return;
        }
        for _ in 0..n {
            let a = self.free.pop().expect("counted");
            self.fill.push(a);
        }
        self.fill.submit();
    }

    /// Whether the kernel wants a wakeup to take frames from the fill ring
    /// (zero-copy drivers; see [`Self::wake_rx`]).
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Takes the sent frames off the completion ring into the free stack.
    pub fn complete(&mut self) -> u32 {
        let n = self.comp.available();
        for i in 0..n {
            let a = self.comp.read(i);
            // Back to the chunk start: the tx descriptor may point past it.
            self.free.push(a & !(self.frame_size as u64 - 1));
        }
        if n > 0 {
            self.comp.release(n);
        }
        n
    }

    /// Copies up to `out.len()` received descriptors into `out` and
    /// releases their ring entries; the frames are the caller's until it
    /// sends or frees them.
    pub fn rx_burst(&mut self, out: &mut [RxFrame]) -> usize {
        let n = self.rx.available().min(out.len() as u32);
        for (i, o) in out.iter_mut().enumerate().take(n as usize) {
            let d = self.rx.read(i as u32);
            *o = RxFrame {
                addr: d.addr,
                len: d.len,
            };
        }
        if n > 0 {
            self.rx.release(n);
        }
        n as usize
    }

    /// The chunk holding `addr`, as (start of the chunk's memory, offset of
    /// `addr` in it, chunk size).
    ///
    /// # Safety
    /// The caller must own the frame (received, allocated, not yet sent or
    /// freed) and not hold another reference into it.
    pub unsafe fn chunk(&self, addr: u64) -> (*mut u8, usize, usize) {
        let fs = self.frame_size as u64;
        let start = addr & !(fs - 1);
        debug_assert!(start + fs <= self.umem.len as u64);
        // SAFETY: start is inside the UMEM (the kernel only hands out its chunks).
        let p = unsafe { self.umem.ptr.as_ptr().add(start as usize) };
        (p, (addr - start) as usize, fs as usize)
    }

    /// A frame from the free stack (its chunk start), if any.
    pub fn alloc(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Returns a frame the caller owns to the free stack.
    pub fn free(&mut self, addr: u64) {
        self.free.push(addr & !(self.frame_size as u64 - 1));
    }

    /// Queues a frame the caller owns for transmission; false (the frame is
    /// still the caller's) when the tx ring is full.
    pub fn tx(&mut self, addr: u64, len: u32) -> bool {
        if self.tx.free_entries(1) == 0 {
            return false;
        }
        self.tx.push(libc::xdp_desc {
            addr,
            len,
            options: 0,
        });
        self.tx_pending += 1;
        true
    }

    /// Publishes queued transmissions and, while the kernel has not taken
    /// them all and asks for a wakeup, kicks it with one `sendto` (copy mode
    /// sends at most 32 frames per kick, so a big burst takes a few loops).
    /// Returns whether a syscall was made.
    pub fn flush_tx(&mut self) -> bool {
        if self.tx_pending > 0 {
            self.tx_pending = 0;
            self.tx.submit();
        }
        if !self.tx_unsent() {
            return false;
        }
        // The flag is read after the producer store is visible.
        fence(Ordering::SeqCst);
        if !self.tx.needs_wakeup() {
            return false;
        }
        // SAFETY: a zero-length send on our socket only kicks the tx path.
        unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        true
    }

    /// Whether the tx ring holds frames the kernel has not taken yet.
    pub fn tx_unsent(&self) -> bool {
        self.tx.consumer().load(Ordering::Acquire) != self.tx.local
    }

    /// Kicks the receive side (zero-copy drivers waiting for fill entries).
    pub fn wake_rx(&self) {
        // SAFETY: a zero-length non-blocking receive on our socket.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// The kernel's counters for this socket.
    pub fn kernel_stats(&self) -> io::Result<KernelStats> {
        kernel_stats(self.fd.as_raw_fd())
    }
}

/// The kernel's counters for the AF_XDP socket `fd` (`XDP_STATISTICS`);
/// any thread may ask while the socket is open.
pub fn kernel_stats(fd: RawFd) -> io::Result<KernelStats> {
    // SAFETY: all-zero is valid; the kernel fills it.
    let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            (&mut s as *mut libc::xdp_statistics).cast(),
            &mut len,
        )
    };
    check(r, "XDP_STATISTICS")?;
    Ok(KernelStats {
        rx_dropped: s.rx_dropped,
        rx_invalid: s.rx_invalid_descs,
        tx_invalid: s.tx_invalid_descs,
        rx_ring_full: s.rx_ring_full,
        fill_ring_empty: s.rx_fill_ring_empty_descs,
        tx_ring_empty: s.tx_ring_empty_descs,
    })
}

/// Where the kernel put each ring's producer, consumer, flags and descriptors.
fn mmap_offsets(raw: RawFd) -> io::Result<libc::xdp_mmap_offsets> {
    // SAFETY: all-zero is a valid xdp_mmap_offsets; the kernel fills it.
    let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `off`.
    let r = unsafe {
        libc::getsockopt(
            raw,
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            (&mut off as *mut libc::xdp_mmap_offsets).cast(),
            &mut len,
        )
    };
    check(r, "XDP_MMAP_OFFSETS")?;
    if len as usize != std::mem::size_of::<libc::xdp_mmap_offsets>() {
        return Err(io::Error::other(
            "XDP_MMAP_OFFSETS: the kernel is too old (no ring flags, Linux < 5.4)",
        ));
    }
    Ok(off)
}

/// Binds the socket to `queue` of `ifindex` in `mode` (copy or zero-copy).
fn bind(raw: RawFd, ifindex: u32, queue: u32, mode: u16) -> io::Result<()> {
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: mode | libc::XDP_USE_NEED_WAKEUP,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    // SAFETY: bind with a sockaddr_xdp of its own size.
    let r = unsafe {
        libc::bind(
            raw,
            (&sa as *const libc::sockaddr_xdp).cast(),
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    let what = if mode == libc::XDP_ZEROCOPY {
        "bind (zero-copy)"
    } else {
        "bind (copy mode)"
    };
    check(r, what)
}

/// Busy polling on the socket: SO_PREFER_BUSY_POLL, SO_BUSY_POLL, its budget.
fn busy_poll(raw: RawFd, usecs: u32, budget: u32) -> io::Result<()> {
    let one: libc::c_int = 1;
    setopt(
        raw,
        libc::SOL_SOCKET,
        SO_PREFER_BUSY_POLL,
        &one,
        "SO_PREFER_BUSY_POLL",
    )
    .and_then(|_| {
        setopt(
            raw,
            libc::SOL_SOCKET,
            SO_BUSY_POLL,
            &(usecs as libc::c_int),
            "SO_BUSY_POLL",
        )
    })
    .and_then(|_| {
        setopt(
            raw,
            libc::SOL_SOCKET,
            SO_BUSY_POLL_BUDGET,
            &(budget as libc::c_int),
            "SO_BUSY_POLL_BUDGET",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket on loopback (copy mode, lo always exists; busy polling
    /// asked for): the rings map,
    /// frames go round the free stack, a frame queued for transmission
    /// comes back on the completion ring. Needs root (CAP_NET_RAW).
    #[test]
    fn a_socket_binds_and_its_frames_go_round() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: AF_XDP needs root");
            return;
        }
        let cfg = XskConfig {
            frame_size: 2048,
            frames: 64,
            ring_size: 64,
            zero_copy: ZeroCopy::Auto,
            busy_poll: Some((20, 16)),
        };
        let lo = crate::backend::ifindex("lo").expect("lo");
        let mut x = Xsk::open(&cfg, lo, 0).expect("AF_XDP on lo");
        assert!(!x.zero_copy, "lo has no zero-copy");
        assert_eq!(x.free_frames(), 32, "half the frames went to the fill ring");
        let a = x.alloc().expect("a free frame");
        // SAFETY: we own frame `a`.
        let (p, off, size) = unsafe { x.chunk(a + 100) };
        assert_eq!((off, size), (100, 2048));
        // A broadcast Ethernet frame of 60 bytes.
        // SAFETY: writing inside the owned chunk.
        unsafe {
            std::ptr::write_bytes(p, 0xff, 6);
            std::ptr::write_bytes(p.add(6), 0x02, 54);
        }
        assert!(x.tx(a, 60));
        x.flush_tx();
        let mut done = 0;
        for _ in 0..200 {
            done += x.complete();
            if done > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            x.flush_tx();
        }
        assert_eq!(done, 1, "the sent frame completes");
        assert_eq!(x.free_frames(), 32);
        let st = x.kernel_stats().expect("statistics");
        assert_eq!(st.tx_invalid, 0);
    }
}
