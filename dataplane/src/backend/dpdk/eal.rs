//! The safe layer over `tollgate-dpdk-sys`: EAL start-up (once per
//! process), mbuf pools, ports and their queues, and mbufs as owned
//! buffers. Every `unsafe` call into DPDK of the backend is here.

use super::super::BackendError;
use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use tollgate_dpdk_sys as sys;

fn err(what: impl std::fmt::Display, code: i32) -> BackendError {
    // SAFETY: rte_strerror returns a static or thread-local string.
    let why = unsafe { CStr::from_ptr(sys::rte_strerror(code.abs())) };
    BackendError::Other(format!("{what}: {}", why.to_string_lossy()))
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// The EAL, initialised; cleaned up on drop.
pub struct Eal(());

impl Eal {
    /// `rte_eal_init` with `args` (after the program name). The calling
    /// thread's CPU affinity, which EAL sets to its main lcore, is given back.
    pub fn init(args: &[String]) -> Result<Eal, BackendError> {
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err(BackendError::Other(
                "DPDK's EAL was already started in this process (once per process)".into(),
            ));
        }
        let mut argv: Vec<CString> = vec![c"tollgate".to_owned()];
        for a in args {
            argv.push(CString::new(a.as_str()).map_err(|_| {
                BackendError::Other(format!("EAL argument {a:?} contains a NUL byte"))
            })?);
        }
        // EAL may keep and permute argv: it lives as long as the process.
        let argv: &'static mut [CString] = Vec::leak(argv);
        let mut ptrs: Vec<*mut libc::c_char> = argv
            .iter()
            .map(|c| c.as_ptr() as *mut libc::c_char)
            .collect();
        let ptrs: &'static mut [*mut libc::c_char] = Vec::leak(std::mem::take(&mut ptrs));
        // SAFETY: a zeroed cpu_set_t is valid; getaffinity fills it.
        let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let have_mask = unsafe {
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut mask) == 0
        };
        // SAFETY: argc/argv describe NUL-terminated strings that outlive EAL.
        let r = unsafe { sys::rte_eal_init(ptrs.len() as i32, ptrs.as_mut_ptr()) };
        if have_mask {
            // SAFETY: restoring the mask read above on this thread.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mask) };
        }
        if r < 0 {
            // SAFETY: reads this thread's rte_errno.
            let code = unsafe { sys::tg_errno() };
            return Err(err(format!("rte_eal_init({})", args.join(" ")), code));
        }
        Ok(Eal(()))
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: every port and pool was released before (field order in the backend).
        unsafe { sys::rte_eal_cleanup() };
    }
}

/// Registers the calling (non-EAL) thread with DPDK so that it has an lcore
/// id and per-lcore mempool caches; unregistered on drop.
pub struct ThreadRegistration(());

impl ThreadRegistration {
    pub fn new() -> Result<Self, BackendError> {
        // SAFETY: called once on this thread after EAL init.
        if unsafe { sys::rte_thread_register() } != 0 {
            return Err(err("rte_thread_register", unsafe { sys::tg_errno() }));
        }
        Ok(ThreadRegistration(()))
    }
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // SAFETY: this thread registered itself.
        unsafe { sys::rte_thread_unregister() };
    }
}

/// An mbuf pool.
pub struct Pool(NonNull<sys::rte_mempool>);

// SAFETY: DPDK mempools are multi-producer/multi-consumer.
unsafe impl Send for Pool {}
unsafe impl Sync for Pool {}

/// `name` for DPDK; a NUL in it (from the config) is an error, not a panic.
fn c_name(name: &str) -> Result<CString, BackendError> {
    CString::new(name)
        .map_err(|_| BackendError::Other(format!("DPDK name {name:?} contains a NUL byte")))
}

impl Pool {
    pub fn new(name: &str, mbufs: u32) -> Result<Pool, BackendError> {
        let c = c_name(name)?;
        // SAFETY: valid name; DPDK copies it.
        let p = unsafe {
            sys::rte_pktmbuf_pool_create(
                c.as_ptr(),
                mbufs,
                256,
                0,
                sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                sys::SOCKET_ID_ANY,
            )
        };
        NonNull::new(p).map(Pool).ok_or_else(|| {
            err(format!("mbuf pool {name} of {mbufs}"), unsafe {
                sys::tg_errno()
            })
        })
    }

    pub fn raw(&self) -> *mut sys::rte_mempool {
        self.0.as_ptr()
    }

    /// A fresh one-segment mbuf, or None when the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is live.
        NonNull::new(unsafe { sys::tg_pktmbuf_alloc(self.raw()) }).map(Mbuf)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: no mbuf of the pool is used any more (ports stopped first).
        unsafe { sys::rte_mempool_free(self.raw()) };
    }
}

/// An owned packet buffer; freed on drop.
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an mbuf is owned by one thread at a time.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of `m` (from a receive burst).
    ///
    /// # Safety
    /// `m` is a valid mbuf nobody else owns.
    pub unsafe fn from_raw(m: *mut sys::rte_mbuf) -> Mbuf {
        Mbuf(NonNull::new_unchecked(m))
    }
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }
    pub fn segments(&self) -> u16 {
        // SAFETY: a live mbuf.
        unsafe { sys::tg_mbuf_nb_segs(self.0.as_ptr()) }
    }
    pub fn len(&self) -> usize {
        // SAFETY: a live mbuf.
        unsafe { sys::tg_mbuf_data_len(self.0.as_ptr()) as usize }
    }
    /// The first segment's data and the room after it.
    pub fn room(&mut self) -> &mut [u8] {
        let m = self.0.as_ptr();
        // SAFETY: data .. data + data_len + tailroom lies in the mbuf's buffer,
        // which we own exclusively.
        unsafe {
            let n = sys::tg_mbuf_data_len(m) as usize + sys::tg_mbuf_tailroom(m) as usize;
            std::slice::from_raw_parts_mut(sys::tg_mbuf_data(m), n)
        }
    }
    /// Sets the packet's length; false if it does not fit.
    pub fn set_len(&mut self, len: usize) -> bool {
        let Ok(len) = u16::try_from(len) else {
            return false;
        };
        // SAFETY: a live one-segment mbuf.
        unsafe { sys::tg_mbuf_set_len(self.0.as_ptr(), len) == 0 }
    }
    /// Clears offload flags before a send.
    pub fn reset_tx(&mut self) {
        // SAFETY: a live mbuf.
        unsafe { sys::tg_mbuf_reset_tx(self.0.as_ptr()) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own it.
        unsafe { sys::tg_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// A started port.
pub struct Port {
    pub id: u16,
    pub mac: [u8; 6],
    pub queues: u16,
}

impl Port {
    /// The port DPDK created or probed under `name`.
    pub fn find(name: &str) -> Result<u16, BackendError> {
        let c = c_name(name)?;
        let mut id = 0u16;
        // SAFETY: valid name and out-pointer.
        let r = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if r != 0 {
            return Err(BackendError::Other(format!(
                "DPDK has no port named {name:?} (is the device bound to DPDK, or the vdev valid?)"
            )));
        }
        Ok(id)
    }

    /// Configures `id` with `queues` receive queues (fed from `rx_pool`,
    /// all polled by one worker: a device that spreads packets over its
    /// queues, as net_af_packet does with `qpairs`, loses none) and as many
    /// transmit queues (one per worker) of `descriptors` each, enables
    /// promiscuous and all-multicast reception (neighbour solicitations go
    /// to multicast groups), and starts it.
    pub fn start(
        id: u16,
        queues: u16,
        descriptors: u16,
        rx_pool: &Pool,
    ) -> Result<Port, BackendError> {
        // SAFETY: zeroed rte_eth_dev_info is valid; the call fills it.
        let mut info: sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        let r = unsafe { sys::rte_eth_dev_info_get(id, &mut info) };
        if r != 0 {
            return Err(err(format!("port {id}: device info"), r));
        }
        if info.max_tx_queues < queues || info.max_rx_queues < queues {
            return Err(BackendError::Other(format!(
                "port {id}: the device has {} receive and {} transmit queues; each of the \
                 {queues} workers needs its own (for net_af_packet add `qpairs={queues}` to the vdev)",
                info.max_rx_queues, info.max_tx_queues
            )));
        }
        let tx_queues = queues;
        // SAFETY: a zeroed rte_eth_conf asks for no offloads and no RSS.
        let conf: sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        // SAFETY: valid port id (found by name) and conf.
        let r = unsafe { sys::rte_eth_dev_configure(id, queues, tx_queues, &conf) };
        if r != 0 {
            return Err(err(format!("port {id}: configure {queues} queue pairs"), r));
        }
        for q in 0..queues {
            // SAFETY: port configured; NULL queue configs take the defaults.
            let r = unsafe {
                sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    descriptors,
                    sys::SOCKET_ID_ANY as u32,
                    std::ptr::null(),
                    rx_pool.raw(),
                )
            };
            if r != 0 {
                return Err(err(format!("port {id}: receive queue {q}"), r));
            }
        }
        for q in 0..tx_queues {
            // SAFETY: as above.
            let r = unsafe {
                sys::rte_eth_tx_queue_setup(
                    id,
                    q,
                    descriptors,
                    sys::SOCKET_ID_ANY as u32,
                    std::ptr::null(),
                )
            };
            if r != 0 {
                return Err(err(format!("port {id}: transmit queue {q}"), r));
            }
        }
        // SAFETY: queues set up.
        let r = unsafe { sys::rte_eth_dev_start(id) };
        if r != 0 {
            return Err(err(format!("port {id}: start"), r));
        }
        // Best effort: a driver without the filters receives everything anyway.
        unsafe {
            sys::rte_eth_promiscuous_enable(id);
            sys::rte_eth_allmulticast_enable(id);
        }
        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: valid out-pointer.
        let r = unsafe { sys::rte_eth_macaddr_get(id, &mut mac) };
        if r != 0 {
            return Err(err(format!("port {id}: MAC address"), r));
        }
        Ok(Port {
            id,
            mac: mac.addr_bytes,
            queues,
        })
    }

    /// Received, sent and missed packets as the driver counts them.
    pub fn stats(&self) -> Option<(u64, u64, u64)> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid out-pointer.
        (unsafe { sys::rte_eth_stats_get(self.id, &mut s) } == 0).then_some((
            s.ipackets,
            s.opackets,
            s.imissed + s.ierrors,
        ))
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: no worker uses the port any more.
        unsafe {
            sys::rte_eth_dev_stop(self.id);
            sys::rte_eth_dev_close(self.id);
        }
    }
}

/// Receives up to `out.len()` packets from `queue` of `port`.
pub fn rx_burst(port: u16, queue: u16, out: &mut [*mut sys::rte_mbuf]) -> usize {
    // SAFETY: the queue is polled by this thread only; out has room.
    unsafe { sys::tg_eth_rx_burst(port, queue, out.as_mut_ptr(), out.len() as u16) as usize }
}

/// Sends `pkts` on `queue` of `port`; returns how many the driver took (the
/// rest still belong to the caller).
pub fn tx_burst(port: u16, queue: u16, pkts: &mut [*mut sys::rte_mbuf]) -> usize {
    // SAFETY: the queue is used by this thread only; the mbufs are ours.
    unsafe { sys::tg_eth_tx_burst(port, queue, pkts.as_mut_ptr(), pkts.len() as u16) as usize }
}

pub type RawMbuf = *mut sys::rte_mbuf;
