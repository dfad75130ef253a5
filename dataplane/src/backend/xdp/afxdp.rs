//! The AF_XDP pipeline workers of the XDP backend: where packets of flows
//! with stages are handled in user space.
//!
//! The XDP program does the whole relay work for every flow (source
//! learning, strict source, follow, FIB lookup, rewrite, counters); for a
//! flow flagged `TG_FLOW_PIPELINE` it then puts a `tg_xsk_meta` (the flow's
//! slot and the egress interface) in front of the rewritten frame and
//! redirects it into the AF_XDP socket of its (interface, rx queue). So a
//! worker only runs the flow's stages and transmits:
//!
//! - one [`Xsk`] per (media interface, rx queue), each with its own UMEM;
//!   the queues are grouped by index onto the workers (queue q on worker
//!   q mod n, n = min(cores, fewest queues of an interface)), so every
//!   worker has a socket on every interface to transmit on;
//! - the loop: completions back to the free stack, fill ring topped up, an
//!   rx burst from each socket, [`Pipeline::process`] on each frame's UDP
//!   payload, then the verdict: `Forward` transmits the frame itself when
//!   it leaves by the interface it came in on, else a copy in a frame of the
//!   egress socket's UMEM; `ForwardRtcp` also moves both UDP ports up by one
//!   (incremental checksum); a drop recycles the frame. A stage that changed
//!   the payload has the IP and UDP lengths and the UDP checksum redone.
//!   Transmissions are published once per burst, with one `sendto` per
//!   socket only when the kernel asks for a wakeup (`need_wakeup`).
//! - originated packets ([`Pipeline::tick`], the 20 ms wheel) are not
//!   frames of any socket: they go out of a per-worker raw IPv4/IPv6 socket
//!   (`IPPROTO_RAW`, headers built here) so the kernel routes them and
//!   resolves the next hop's MAC, batched into one `sendmmsg` per family per
//!   tick. They go to the flow's destination, or to where the flow's frames
//!   were last rewritten to go (a followed, learned peer).
//! - idle: a worker that just had work sleeps `coalesce_us` (software
//!   interrupt coalescing) and then takes whatever gathered in one go: on
//!   this VM's veths a wakeup per frame, and the transmit kick with the
//!   peer's NAPI wakeup behind it, cost more than all the rest of the path
//!   (`perf`: 26 % of the relay core in `__napi_schedule` alone), and one
//!   of each per 200 µs instead of per frame took CPU per packet from 13.3
//!   to the figure in docs/benchmarks.md. Optionally (`spin_us`) it keeps
//!   polling its rings, yielding the core (the interfaces' NAPI threads may
//!   share it), when bursts come closer together than that; spinning costs
//!   the whole core, so it is off by default. A worker that found nothing
//!   sleeps in `poll` on its sockets and its eventfd, at most until the
//!   next 20 ms tick. With busy polling on, an empty rx ring is
//!   answered by a `recvfrom`, which runs the driver's NAPI poll on the
//!   worker's core (the point of busy polling; one syscall per empty poll,
//!   never per packet).
//!
//! Every worker holds every pipeline flow's stages (its own copy of their
//! state): which queue, hence which worker, a packet reaches is the NIC's
//! RSS hash, not ours. RSS keeps a 5-tuple on one queue, so in practice
//! one worker's copy sees a stream; a stage whose state must span queues
//! (none yet) would need the flow steered to one queue (ntuple rules).
//!
//! No allocation, lock, log or syscall per packet; counters are plain
//! per-worker integers published to atomics once per loop that did work.
//! Flow changes arrive by message (crossbeam channel plus an eventfd wake)
//! and are acknowledged, so the control thread writes a flow's map entry
//! only once every worker has its stages.

use super::xsk::{kernel_stats, KernelStats, RxFrame, Xsk, XskConfig, ZeroCopy};
use crate::backend::stats::Counter;
use crate::backend::{monotonic_ns, BackendError, WorkerReport};
use crate::config::{AfXdpConfig, ZeroCopyChoice};
use crate::pipeline::{
    Event, EventSink, Payload, Pipeline, PipelineFlow, SharedCounters, Slot, Verdict,
};
use crate::wire::checksum;
use crossbeam_channel::{Receiver, Sender};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tollgate_ebpf::abi::{XskMeta, XSK_META_MAGIC};

/// Longest sleep: one tick of the pipeline's timer wheel.
const TICK_NS: u64 = crate::pipeline::wheel::TICK_MS as u64 * 1_000_000;
/// Originated packets one worker sends per family per tick (more wait).
const ORIGINATE_BATCH: usize = 64;
/// Bytes of room for one originated datagram (IPv6 + UDP headers included).
const ORIGINATE_BUF: usize = 2048;
const META_LEN: usize = std::mem::size_of::<XskMeta>();
const ETH_LEN: usize = 14;

/// The flow's addresses, for packets its stages originate.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

pub enum Message {
    Install {
        slot: Slot,
        flow: Box<PipelineFlow>,
        route: Route,
    },
    Remove {
        slot: Slot,
    },
    Stop,
}

/// Drop and event counters of one worker, outside the pipeline's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum C {
    Rx,
    Tx,
    TxCopied,
    Wakeups,
    Originated,
    BadMetadata,
    Malformed,
    NoTxSocket,
    TxRingFull,
    NoFreeFrame,
    OriginateFailed,
    Count,
}

const NAMES: [&str; C::Count as usize] = [
    "rx",
    "tx",
    "tx_copied",
    "wakeups",
    "originated_sent",
    "bad_metadata",
    "malformed",
    "no_tx_socket",
    "tx_ring_full",
    "no_free_frame",
    "originate_failed",
];
/// Counters from [`C::BadMetadata`] on are drops.
const FIRST_DROP: usize = C::BadMetadata as usize;

/// What a worker publishes for the control thread.
#[derive(Default)]
struct Shared {
    counters: [Counter; C::Count as usize],
    pipeline: SharedCounters,
    flows: Counter,
    busy_ns: Counter,
    /// Sequence number of the last message applied.
    applied: AtomicU64,
}

struct Handle {
    tx: Sender<Message>,
    wake: OwnedFd,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    core: usize,
    started_ns: u64,
    /// Sequence number of the last message sent.
    sent: u64,
    sockets: Vec<String>,
    /// The worker's sockets, open while it runs, for their kernel counters.
    fds: Vec<RawFd>,
}

impl Handle {
    /// The kernel's counters summed over this worker's sockets.
    fn kernel_stats(&self) -> KernelStats {
        let mut t = KernelStats::default();
        for s in self.fds.iter().filter_map(|fd| kernel_stats(*fd).ok()) {
            t.rx_dropped += s.rx_dropped;
            t.rx_ring_full += s.rx_ring_full;
            t.rx_invalid += s.rx_invalid;
            t.tx_invalid += s.tx_invalid;
            t.fill_ring_empty += s.fill_ring_empty;
            t.tx_ring_empty += s.tx_ring_empty;
        }
        t
    }

    fn send(&mut self, m: Message) -> u64 {
        if self.tx.send(m).is_ok() {
            self.sent += 1;
            let one: u64 = 1;
            // SAFETY: writing 8 bytes to an eventfd we own.
            unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
        self.sent
    }
}

/// One interface the workers serve.
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    pub queues: u32,
}

/// Rx queues of `name`, from sysfs (`/sys/class/net/<name>/queues/rx-*`).
pub fn rx_queues(name: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}

/// The running workers.
pub struct Workers {
    handles: Vec<Handle>,
    events: Receiver<Event>,
}

/// Where each socket goes: its index in the XSKMAP, for the caller to set.
pub struct Placed {
    pub key: u32,
    pub fd: RawFd,
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd(2) returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn other(e: impl std::fmt::Display) -> BackendError {
    BackendError::Other(e.to_string())
}

impl Workers {
    /// Starts workers on `cores` for `interfaces`, whose queue q of the
    /// interface at position i is XSKMAP key `bases[i] + q`. Returns the
    /// workers and the sockets to put in the XSKMAP (their descriptors stay
    /// open as long as the workers run).
    pub fn start(
        cfg: &AfXdpConfig,
        interfaces: &[Interface],
        bases: &[u32],
        cores: &[usize],
    ) -> Result<(Workers, Vec<Placed>), BackendError> {
        let fewest = interfaces.iter().map(|i| i.queues).min().unwrap_or(1);
        let n = cores.len().clamp(1, fewest.max(1) as usize);
        let xcfg = XskConfig {
            frame_size: cfg.frame_size,
            frames: cfg.frames,
            ring_size: cfg.ring_size,
            zero_copy: match cfg.zero_copy {
                ZeroCopyChoice::Auto => ZeroCopy::Auto,
                ZeroCopyChoice::Off => ZeroCopy::Off,
            },
            busy_poll: cfg
                .busy_poll
                .then_some((cfg.busy_poll_usecs, cfg.busy_poll_budget)),
        };
        let (ev_tx, events) = crossbeam_channel::bounded(crate::backend::EVENT_QUEUE);
        // Built up in place: a worker that fails to start stops the ones
        // started before it (Drop).
        let mut workers = Workers {
            handles: Vec::new(),
            events,
        };
        let mut placed = Vec::new();
        for (w, &core) in cores.iter().enumerate().take(n) {
            let mut mine = Vec::new();
            for (i, itf) in interfaces.iter().enumerate() {
                for q in (0..itf.queues).filter(|q| *q as usize % n == w) {
                    mine.push((itf.ifindex, q, bases[i] + q, format!("{}/{q}", itf.name)));
                }
            }
            let (tx, rx) = crossbeam_channel::unbounded();
            let wake = eventfd().map_err(|e| other(format!("eventfd: {e}")))?;
            let wake_fd = wake.as_raw_fd();
            let shared = Arc::new(Shared::default());
            let (ready_tx, ready) = crossbeam_channel::bounded(1);
            let (w_shared, w_cfg, ev_tx) = (shared.clone(), xcfg.clone(), ev_tx.clone());
            let pace = Pace {
                burst: cfg.burst as usize,
                spin_ns: cfg.spin_us as u64 * 1000,
                coalesce_ns: cfg.coalesce_us as u64 * 1000,
            };
            let queues: Vec<(u32, u32)> = mine.iter().map(|m| (m.0, m.1)).collect();
            let thread = std::thread::Builder::new()
                .name(format!("tg-afxdp-{core}"))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        tracing::warn!(core, "could not pin the AF_XDP worker to its core");
                    }
                    // Sockets and UMEMs are made on the worker's own core.
                    match Worker::new(&w_cfg, &queues, rx, wake_fd, w_shared, ev_tx, pace) {
                        Ok(w) => {
                            let fds: Vec<(RawFd, bool)> =
                                w.xsks.iter().map(|x| (x.fd(), x.zero_copy)).collect();
                            let _ = ready_tx.send(Ok(fds));
                            w.run()
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })
                .map_err(|e| other(format!("spawning an AF_XDP worker: {e}")))?;
            let fds = ready
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("worker thread exited during setup")))
                .map_err(|e| other(format!("AF_XDP worker on core {core}: {e}")))?;
            let mut names = Vec::new();
            let mut worker_fds = Vec::new();
            for ((_, _, key, name), (fd, zc)) in mine.into_iter().zip(fds) {
                placed.push(Placed { key, fd });
                worker_fds.push(fd);
                names.push(format!("{name}{}", if zc { " zero-copy" } else { " copy" }));
            }
            tracing::info!(core, sockets = %names.join(", "), "AF_XDP worker started");
            workers.handles.push(Handle {
                tx,
                wake,
                shared,
                thread: Some(thread),
                core,
                started_ns: monotonic_ns(),
                sent: 0,
                sockets: names,
                fds: worker_fds,
            });
        }
        Ok((workers, placed))
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Installs `flow`'s stages in `slot` on every worker (each its own
    /// state), and waits (at most 1 s) until every worker has applied it.
    pub fn install(&mut self, slot: Slot, make: impl Fn() -> PipelineFlow, route: Route) -> bool {
        let mut want = Vec::with_capacity(self.handles.len());
        for h in &mut self.handles {
            want.push(h.send(Message::Install {
                slot,
                flow: Box::new(make()),
                route,
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let done = self
                .handles
                .iter()
                .zip(&want)
                .all(|(h, w)| h.shared.applied.load(Ordering::Acquire) >= *w);
            if done {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Removes `slot` from every worker (not waited for).
    pub fn remove(&mut self, slot: Slot) {
        for h in &mut self.handles {
            h.send(Message::Remove { slot });
        }
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.try_iter().collect()
    }

    /// Worker counters summed over workers, by name (prefixed `worker_`).
    pub fn totals(&self) -> Vec<(String, u64)> {
        let mut t = vec![0u64; NAMES.len()];
        for h in &self.handles {
            for (v, c) in t.iter_mut().zip(&h.shared.counters) {
                *v += c.get();
            }
        }
        let mut out: Vec<(String, u64)> = NAMES
            .iter()
            .zip(t)
            .map(|(n, v)| (format!("worker_{n}"), v))
            .collect();
        out.push(("afxdp_workers".into(), self.handles.len() as u64));
        out
    }

    pub fn reports(&self) -> Vec<WorkerReport> {
        let now = monotonic_ns();
        self.handles
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let c = |k: C| h.shared.counters[k as usize].get();
                WorkerReport {
                    worker: i,
                    core: h.core,
                    flows: h.shared.flows.get() as usize,
                    rx_packets: c(C::Rx),
                    tx_packets: c(C::Tx),
                    busy_ns: h.shared.busy_ns.get(),
                    uptime_ns: now.saturating_sub(h.started_ns),
                    drops: {
                        let mut d: std::collections::BTreeMap<&'static str, u64> = NAMES
                            [FIRST_DROP..]
                            .iter()
                            .enumerate()
                            .map(|(j, n)| (*n, h.shared.counters[FIRST_DROP + j].get()))
                            .collect();
                        // What the kernel dropped before the worker saw it.
                        let k = h.kernel_stats();
                        d.insert("xsk_rx_dropped", k.rx_dropped);
                        d.insert("xsk_rx_ring_full", k.rx_ring_full);
                        d.insert("xsk_rx_invalid", k.rx_invalid);
                        d.insert("xsk_tx_invalid", k.tx_invalid);
                        d
                    },
                    pipeline: h.shared.pipeline.load(),
                }
            })
            .collect()
    }

    /// The sockets each worker serves, `ifname/queue mode`.
    pub fn sockets(&self) -> Vec<Vec<String>> {
        self.handles.iter().map(|h| h.sockets.clone()).collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for h in &mut self.handles {
            h.send(Message::Stop);
        }
        for h in &mut self.handles {
            if let Some(t) = h.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Per-slot state a worker keeps beside the pipeline.
#[derive(Clone, Copy)]
struct SlotRoute {
    route: Route,
}

/// Datagrams waiting to leave through one raw socket.
struct Batch {
    fd: Option<OwnedFd>,
    bufs: Box<[u8]>,
    lens: [usize; ORIGINATE_BATCH],
    addrs: Box<[libc::sockaddr_storage; ORIGINATE_BATCH]>,
    iovs: Box<[libc::iovec; ORIGINATE_BATCH]>,
    msgs: Box<[libc::mmsghdr; ORIGINATE_BATCH]>,
    n: usize,
}

impl Batch {
    fn new(family: libc::c_int) -> Batch {
        // SAFETY: socket(2); -1 (no such family here) leaves the batch unusable, counted.
        let fd = unsafe {
            libc::socket(
                family,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_RAW,
            )
        };
        let fd = (fd >= 0).then(|| {
            // SAFETY: fresh descriptor.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            if family == libc::AF_INET6 {
                const IPV6_HDRINCL: libc::c_int = 36;
                let one: libc::c_int = 1;
                // SAFETY: an int option; IPPROTO_RAW implies it on current kernels anyway.
                unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        libc::IPPROTO_IPV6,
                        IPV6_HDRINCL,
                        (&one as *const libc::c_int).cast(),
                        4,
                    )
                };
            }
            fd
        });
        // SAFETY: all-zero is valid for these C structs.
        unsafe {
            Batch {
                fd,
                bufs: vec![0u8; ORIGINATE_BATCH * ORIGINATE_BUF].into_boxed_slice(),
                lens: [0; ORIGINATE_BATCH],
                addrs: Box::new(std::mem::zeroed()),
                iovs: Box::new(std::mem::zeroed()),
                msgs: Box::new(std::mem::zeroed()),
                n: 0,
            }
        }
    }

    /// Sends what is queued; returns (sent, failed).
    fn flush(&mut self) -> (u64, u64) {
        let n = std::mem::take(&mut self.n);
        if n == 0 {
            return (0, 0);
        }
        let Some(fd) = &self.fd else {
            return (0, n as u64);
        };
        for i in 0..n {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * ORIGINATE_BUF..].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
            let h = &mut self.msgs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: n initialised headers pointing at our buffers.
        let r = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
            )
        };
        let sent = r.max(0) as u64;
        (sent, n as u64 - sent)
    }
}

/// How a worker takes its frames: burst size, idle spin and coalescing.
#[derive(Clone, Copy)]
struct Pace {
    burst: usize,
    spin_ns: u64,
    coalesce_ns: u64,
}

struct Worker {
    xsks: Vec<Xsk>,
    /// For each interface (ifindex), the index in `xsks` of the socket this
    /// worker transmits on there.
    tx_on: Vec<(u32, usize)>,
    pipeline: Pipeline,
    routes: Vec<Option<SlotRoute>>,
    inbox: Receiver<Message>,
    wake: RawFd,
    shared: Arc<Shared>,
    counters: [u64; C::Count as usize],
    burst: Vec<RxFrame>,
    /// Frames each socket keeps back from its fill ring for copies.
    reserve: usize,
    ring_size: u32,
    v4: Batch,
    v6: Batch,
    originate_buf: Box<[u8]>,
    applied: u64,
    /// How long an idle worker keeps polling before it sleeps (ns).
    spin_ns: u64,
    /// How long a worker that just had work sleeps before looking again.
    coalesce_ns: u64,
    /// Busy polling: an empty rx ring is answered with a `recvfrom`, which
    /// runs the driver's poll on this core (SO_PREFER_BUSY_POLL).
    busy_poll: bool,
}

impl Worker {
    fn new(
        cfg: &XskConfig,
        queues: &[(u32, u32)],
        inbox: Receiver<Message>,
        wake: RawFd,
        shared: Arc<Shared>,
        events: EventSink,
        pace: Pace,
    ) -> io::Result<Worker> {
        let Pace {
            burst,
            spin_ns,
            coalesce_ns,
        } = pace;
        let mut xsks = Vec::new();
        let mut tx_on: Vec<(u32, usize)> = Vec::new();
        for &(ifindex, queue) in queues {
            let x = Xsk::open(cfg, ifindex, queue).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("AF_XDP socket on ifindex {ifindex} queue {queue}: {e}"),
                )
            })?;
            if !tx_on.iter().any(|(i, _)| *i == ifindex) {
                tx_on.push((ifindex, xsks.len()));
            }
            xsks.push(x);
        }
        Ok(Worker {
            xsks,
            tx_on,
            pipeline: Pipeline::new(events),
            routes: Vec::new(),
            inbox,
            wake,
            shared,
            counters: [0; C::Count as usize],
            burst: vec![RxFrame::default(); burst],
            reserve: cfg.frames as usize / 4,
            ring_size: cfg.ring_size,
            v4: Batch::new(libc::AF_INET),
            v6: Batch::new(libc::AF_INET6),
            originate_buf: vec![0u8; ORIGINATE_BUF].into_boxed_slice(),
            applied: 0,
            busy_poll: cfg.busy_poll.is_some(),
            spin_ns,
            coalesce_ns,
        })
    }

    /// Applies queued messages; false when told to stop.
    fn apply_messages(&mut self) -> bool {
        let mut any = false;
        while let Ok(m) = self.inbox.try_recv() {
            any = true;
            self.applied += 1;
            match m {
                Message::Install { slot, flow, route } => {
                    self.pipeline.install(slot, *flow);
                    let i = slot as usize;
                    if self.routes.len() <= i {
                        self.routes.resize(i + 1, None);
                    }
                    self.routes[i] = Some(SlotRoute { route });
                }
                Message::Remove { slot } => {
                    self.pipeline.remove(slot);
                    if let Some(r) = self.routes.get_mut(slot as usize) {
                        *r = None;
                    }
                }
                Message::Stop => return false,
            }
        }
        if any {
            self.shared.flows.set(self.pipeline.flows() as u64);
            self.shared.applied.store(self.applied, Ordering::Release);
        }
        true
    }

    fn run(mut self) {
        let mut idle_since: Option<u64> = None;
        // End of the last loop that found work, and whether the gap before
        // it was short enough that spinning would have caught it.
        let mut last_work = 0u64;
        // Whether the last loop that did anything found frames or ticks.
        let mut worked = false;
        let mut spin = false;
        let spin_ns = self.spin_ns;
        let mut next_tick = 0u64;
        let mut pollfds: Vec<libc::pollfd> = self
            .xsks
            .iter()
            .map(|x| x.fd())
            .chain([self.wake])
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        loop {
            if !self.inbox.is_empty() {
                if !self.apply_messages() {
                    return;
                }
                next_tick = 0; // fresh originating stages start at once
            }
            let start = monotonic_ns();
            let mut work = 0usize;
            for i in 0..self.xsks.len() {
                work += self.service(i, start);
            }
            let mut unsent = false;
            for x in &mut self.xsks {
                if x.flush_tx() {
                    self.counters[C::Wakeups as usize] += 1;
                }
                unsent |= x.tx_unsent();
            }
            let now = monotonic_ns();
            if now >= next_tick {
                work += self.tick(now);
                next_tick = (now / TICK_NS + 1) * TICK_NS;
            }
            if work > 0 || unsent {
                idle_since = None;
                if work > 0 {
                    worked = true;
                    spin = start.saturating_sub(last_work) <= spin_ns;
                    last_work = now;
                    self.shared.busy_ns.add(monotonic_ns() - start);
                    self.publish();
                }
                continue;
            }
            let since = *idle_since.get_or_insert(now);
            if spin && now - since < spin_ns {
                // Yield, not pause: the interfaces' NAPI threads may share
                // this core, and they are what brings the next frames.
                std::thread::yield_now();
                continue;
            }
            if self.coalesce_ns > 0 && std::mem::take(&mut worked) {
                // Traffic is flowing: let frames gather, then take them in
                // one go, rather than be woken for each.
                std::thread::sleep(std::time::Duration::from_nanos(self.coalesce_ns));
                idle_since = None;
                continue;
            }
            // Sleep until a frame, a message or the next tick.
            let timeout_ms = next_tick.saturating_sub(now).div_ceil(1_000_000).min(20) as i32;
            for p in &mut pollfds {
                p.revents = 0;
            }
            // SAFETY: pollfds is a valid array of pollfd.
            unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as u64, timeout_ms) };
            let wake = pollfds.last().map_or(0, |p| p.revents);
            if wake & libc::POLLNVAL != 0 {
                return; // the control side is gone
            }
            if wake & libc::POLLIN != 0 {
                let mut v = 0u64;
                // SAFETY: reading the 8-byte eventfd counter (non-blocking).
                unsafe { libc::read(self.wake, (&mut v as *mut u64).cast(), 8) };
            }
            idle_since = None;
        }
    }

    fn publish(&self) {
        for (a, v) in self.shared.counters.iter().zip(self.counters) {
            a.set(v);
        }
        self.shared.pipeline.store(self.pipeline.counters());
    }

    fn count(&mut self, c: C) {
        self.counters[c as usize] += 1;
    }

    /// One socket: completions, fill ring, one rx burst. Returns frames handled.
    fn service(&mut self, i: usize, now: u64) -> usize {
        let reserve = self.reserve;
        let x = &mut self.xsks[i];
        x.complete();
        let spare = x.free_frames().saturating_sub(reserve) as u32;
        x.refill(spare.min(self.ring_size));
        // Zero-copy drivers may wait to be told the fill ring has frames.
        if x.fill_needs_wakeup() {
            x.wake_rx();
            self.counters[C::Wakeups as usize] += 1;
        }
        let mut burst = std::mem::take(&mut self.burst);
        let mut n = self.xsks[i].rx_burst(&mut burst);
        if n == 0 && self.busy_poll {
            self.xsks[i].wake_rx();
            n = self.xsks[i].rx_burst(&mut burst);
        }
        for f in &burst[..n] {
            self.counters[C::Rx as usize] += 1;
            self.frame(i, *f, now);
        }
        self.burst = burst;
        n
    }

    /// One received frame on socket `i`: stages, then its fate.
    fn frame(&mut self, i: usize, f: RxFrame, now: u64) {
        // SAFETY: the frame is ours from rx_burst until we send or free it,
        // and no other reference into its chunk exists.
        let (chunk, off, size) = unsafe { self.xsks[i].chunk(f.addr) };
        let len = f.len as usize;
        if off < META_LEN || off + len > size {
            self.count(C::BadMetadata);
            self.xsks[i].free(f.addr);
            return;
        }
        // SAFETY: [chunk, chunk + size) is the frame's chunk, ours.
        let buf = unsafe { std::slice::from_raw_parts_mut(chunk, size) };
        // SAFETY: META_LEN bytes before the data, inside the chunk; XskMeta is Pod.
        let meta: XskMeta =
            unsafe { std::ptr::read_unaligned(buf[off - META_LEN..].as_ptr().cast()) };
        if meta.magic != XSK_META_MAGIC {
            self.count(C::BadMetadata);
            self.xsks[i].free(f.addr);
            return;
        }
        let frame = &mut buf[off..];
        let Some(h) = Headers::parse(&frame[..len]) else {
            self.count(C::Malformed);
            self.xsks[i].free(f.addr);
            return;
        };
        // Remember where this flow's packets really go, for originated ones.
        if let Some(Some(r)) = self.routes.get_mut(meta.slot as usize) {
            let dst = h.destination(frame);
            if r.route.destination != dst {
                r.route.destination = dst;
            }
        }
        let (verdict, modified, new_len) = {
            let mut p = Payload::new(&mut frame[h.payload..], h.payload_len);
            let v = self.pipeline.process(now, meta.slot, &mut p);
            (v, p.modified(), p.len())
        };
        let mut out_len = len;
        match verdict {
            Verdict::Drop(_) => {
                self.xsks[i].free(f.addr);
                return;
            }
            Verdict::ForwardRtcp => h.rtcp_ports(frame, !modified),
            Verdict::Forward => {}
        }
        if modified {
            out_len = h.resize(frame, new_len);
        }
        self.transmit(i, f.addr, out_len, meta.egress_ifindex);
    }

    /// Sends the frame at `addr` (socket `i`'s) out of `egress`.
    fn transmit(&mut self, i: usize, addr: u64, len: usize, egress: u32) {
        if self.xsks[i].ifindex == egress {
            // Out where it came in: the frame itself.
            if self.xsks[i].tx(addr, len as u32) {
                self.count(C::Tx);
            } else {
                self.count(C::TxRingFull);
                self.xsks[i].free(addr);
            }
            return;
        }
        let Some(&(_, j)) = self.tx_on.iter().find(|(ifx, _)| *ifx == egress) else {
            self.count(C::NoTxSocket);
            self.xsks[i].free(addr);
            return;
        };
        // Another interface: a copy into a frame of that socket's UMEM.
        let Some(to) = self.xsks[j].alloc() else {
            self.count(C::NoFreeFrame);
            self.xsks[i].free(addr);
            return;
        };
        // SAFETY: both frames are ours; they are in different UMEMs.
        unsafe {
            let (src, off, _) = self.xsks[i].chunk(addr);
            let (dst, _, _) = self.xsks[j].chunk(to);
            std::ptr::copy_nonoverlapping(src.add(off), dst, len);
        }
        self.xsks[i].free(addr);
        if self.xsks[j].tx(to, len as u32) {
            self.count(C::Tx);
            self.count(C::TxCopied);
        } else {
            self.count(C::TxRingFull);
            self.xsks[j].free(to);
        }
    }

    /// Runs the timer wheel; originated datagrams go out by raw socket, one
    /// `sendmmsg` per family. Returns how many were originated.
    fn tick(&mut self, now: u64) -> usize {
        let Worker {
            pipeline,
            routes,
            v4,
            v6,
            originate_buf,
            counters,
            ..
        } = self;
        let before = pipeline.counters().originated;
        pipeline.tick(now, originate_buf, |slot, p| {
            let Some(Some(r)) = routes.get(slot as usize) else {
                counters[C::OriginateFailed as usize] += 1;
                return;
            };
            let b = if r.route.destination.is_ipv4() {
                &mut *v4
            } else {
                &mut *v6
            };
            if b.n == ORIGINATE_BATCH {
                let (s, f) = b.flush();
                counters[C::Originated as usize] += s;
                counters[C::OriginateFailed as usize] += f;
            }
            let k = b.n;
            let room = &mut b.bufs[k * ORIGINATE_BUF..(k + 1) * ORIGINATE_BUF];
            match build_datagram(room, r.route, p.bytes()) {
                Some(len) => {
                    b.lens[k] = len;
                    b.addrs[k] = sockaddr(r.route.destination.ip());
                    b.n += 1;
                }
                None => counters[C::OriginateFailed as usize] += 1,
            }
        });
        for b in [&mut *v4, &mut *v6] {
            let (s, f) = b.flush();
            counters[C::Originated as usize] += s;
            counters[C::OriginateFailed as usize] += f;
        }
        (pipeline.counters().originated - before) as usize
    }
}

/// A destination for a raw socket (port 0: the headers carry it).
fn sockaddr(ip: IpAddr) -> libc::sockaddr_storage {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match ip {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
        }
        IpAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_addr.s6_addr = v6.octets();
        }
    }
    ss
}

/// Writes an IP + UDP datagram from `r.source` to `r.destination` carrying
/// `payload` into `out`; returns its length, or None if it does not fit.
pub fn build_datagram(out: &mut [u8], r: Route, payload: &[u8]) -> Option<usize> {
    let (ip_len, v4) = match r.source.ip() {
        IpAddr::V4(_) => (20, true),
        IpAddr::V6(_) => (40, false),
    };
    let udp_len = 8 + payload.len();
    let total = ip_len + udp_len;
    if total > out.len() || udp_len > u16::MAX as usize {
        return None;
    }
    let (ip, rest) = out.split_at_mut(ip_len);
    let udp = &mut rest[..udp_len];
    udp[0..2].copy_from_slice(&r.source.port().to_be_bytes());
    udp[2..4].copy_from_slice(&r.destination.port().to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].fill(0);
    udp[8..].copy_from_slice(payload);
    let c = checksum::udp(r.source.ip(), r.destination.ip(), udp);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    match (r.source.ip(), r.destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) if v4 => {
            ip.fill(0);
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = checksum::compute(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ip.fill(0);
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            ip[6] = 17;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
        }
        _ => return None,
    }
    Some(total)
}

/// Where the headers of a rewritten frame are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Headers {
    v4: bool,
    /// Offset of the UDP header.
    udp: usize,
    /// Offset and length of the UDP payload.
    payload: usize,
    payload_len: usize,
}

impl Headers {
    /// Ethernet + IPv4 (no options) or IPv6 (no extension headers) + UDP,
    /// consistent lengths; what the XDP program lets through, checked again.
    fn parse(f: &[u8]) -> Option<Headers> {
        if f.len() < ETH_LEN {
            return None;
        }
        let ethertype = u16::from_be_bytes([f[12], f[13]]);
        let (v4, ip_len, l4_len) = match ethertype {
            0x0800 => {
                let ip = f.get(ETH_LEN..ETH_LEN + 20)?;
                if ip[0] != 0x45 || ip[9] != 17 {
                    return None;
                }
                let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
                (true, 20, tot.checked_sub(20)?)
            }
            0x86dd => {
                let ip = f.get(ETH_LEN..ETH_LEN + 40)?;
                if ip[0] >> 4 != 6 || ip[6] != 17 {
                    return None;
                }
                (false, 40, u16::from_be_bytes([ip[4], ip[5]]) as usize)
            }
            _ => return None,
        };
        let udp = ETH_LEN + ip_len;
        let u = f.get(udp..udp + 8)?;
        let udp_len = u16::from_be_bytes([u[4], u[5]]) as usize;
        if udp_len != l4_len || udp_len < 8 || udp + udp_len > f.len() {
            return None;
        }
        Some(Headers {
            v4,
            udp,
            payload: udp + 8,
            payload_len: udp_len - 8,
        })
    }

    fn destination(&self, f: &[u8]) -> SocketAddr {
        let port = u16::from_be_bytes([f[self.udp + 2], f[self.udp + 3]]);
        let ip: IpAddr = if self.v4 {
            let a: [u8; 4] = f[ETH_LEN + 16..ETH_LEN + 20].try_into().expect("4 bytes");
            Ipv4Addr::from(a).into()
        } else {
            let a: [u8; 16] = f[ETH_LEN + 24..ETH_LEN + 40].try_into().expect("16 bytes");
            Ipv6Addr::from(a).into()
        };
        SocketAddr::new(ip, port)
    }

    fn addrs(&self, f: &[u8]) -> (IpAddr, IpAddr) {
        if self.v4 {
            let s: [u8; 4] = f[ETH_LEN + 12..ETH_LEN + 16].try_into().expect("4 bytes");
            let d: [u8; 4] = f[ETH_LEN + 16..ETH_LEN + 20].try_into().expect("4 bytes");
            (Ipv4Addr::from(s).into(), Ipv4Addr::from(d).into())
        } else {
            let s: [u8; 16] = f[ETH_LEN + 8..ETH_LEN + 24].try_into().expect("16 bytes");
            let d: [u8; 16] = f[ETH_LEN + 24..ETH_LEN + 40].try_into().expect("16 bytes");
            (Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into())
        }
    }

    /// Both UDP ports up by one (RTCP beside RTP), the checksum updated
    /// incrementally when `fix_checksum` (else the caller redoes it).
    fn rtcp_ports(&self, f: &mut [u8], fix_checksum: bool) {
        let u = self.udp;
        let mut check = u16::from_be_bytes([f[u + 6], f[u + 7]]);
        for at in [u, u + 2] {
            let old = u16::from_be_bytes([f[at], f[at + 1]]);
            let new = old.wrapping_add(1);
            f[at..at + 2].copy_from_slice(&new.to_be_bytes());
            if fix_checksum && (check != 0 || !self.v4) {
                check = csum_replace(check, old, new);
            }
        }
        if fix_checksum && (check != 0 || !self.v4) {
            let check = if check == 0 { 0xffff } else { check };
            f[u + 6..u + 8].copy_from_slice(&check.to_be_bytes());
        }
    }

    /// The payload is now `len` bytes: IP and UDP lengths, the IPv4 header
    /// checksum and the UDP checksum redone. Returns the frame's length.
    fn resize(&self, f: &mut [u8], len: usize) -> usize {
        let u = self.udp;
        let udp_len = 8 + len;
        if self.v4 {
            let ip = &mut f[ETH_LEN..ETH_LEN + 20];
            ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
            ip[10..12].fill(0);
            let c = checksum::compute(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        } else {
            f[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        }
        let had_checksum = f[u + 6] != 0 || f[u + 7] != 0 || !self.v4;
        f[u + 4..u + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        f[u + 6..u + 8].fill(0);
        if had_checksum {
            let (s, d) = self.addrs(f);
            let c = checksum::udp(s, d, &f[u..u + udp_len]);
            f[u + 6..u + 8].copy_from_slice(&c.to_be_bytes());
        }
        u + udp_len
    }
}

/// RFC 1624 eqn. 3: checksum `check` after one 16-bit word goes from `old` to `new`.
fn csum_replace(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = (!check) as u32 + (!old) as u32 + new as u32;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet frame with a UDP datagram between a and b.
    fn frame(a: SocketAddr, b: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; ETH_LEN];
        f[12..14].copy_from_slice(if a.is_ipv4() {
            &[0x08, 0]
        } else {
            &[0x86, 0xdd]
        });
        let mut dg = vec![0u8; 100 + payload.len()];
        let n = build_datagram(
            &mut dg,
            Route {
                source: a,
                destination: b,
            },
            payload,
        )
        .unwrap();
        f.extend_from_slice(&dg[..n]);
        f
    }

    fn udp_ok(f: &[u8], h: &Headers) -> bool {
        let (s, d) = h.addrs(f);
        let udp_len = u16::from_be_bytes([f[h.udp + 4], f[h.udp + 5]]) as usize;
        checksum::udp_verifies(s, d, &f[h.udp..h.udp + udp_len])
    }

    #[test]
    fn headers_parse_and_rtcp_ports_keep_the_checksum_valid() {
        for (a, b) in [
            ("10.0.0.1:30000", "10.0.0.2:4000"),
            ("[fd00::1]:30000", "[fd00::2]:4000"),
        ] {
            let (a, b): (SocketAddr, SocketAddr) = (a.parse().unwrap(), b.parse().unwrap());
            let mut f = frame(a, b, &[0x81, 201, 0, 1, 1, 2, 3, 4]);
            let h = Headers::parse(&f).expect("parses");
            assert_eq!(h.payload_len, 8);
            assert_eq!(h.destination(&f), b);
            assert!(udp_ok(&f, &h));
            h.rtcp_ports(&mut f, true);
            assert_eq!(h.destination(&f).port(), 4001);
            assert_eq!(u16::from_be_bytes([f[h.udp], f[h.udp + 1]]), 30001);
            assert!(udp_ok(&f, &h), "incremental update verifies");
            // A payload grown by a stage: lengths and checksums redone.
            f.resize(f.len() + 12, 0xab);
            let n = h.resize(&mut f, 20);
            assert_eq!(n, f.len());
            let h2 = Headers::parse(&f).expect("still parses");
            assert_eq!(h2.payload_len, 20);
            assert!(udp_ok(&f, &h2));
            if a.is_ipv4() {
                assert!(checksum::verify(&f[ETH_LEN..ETH_LEN + 20]));
            }
        }
    }

    #[test]
    fn bad_frames_do_not_parse() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:2".parse().unwrap();
        let good = frame(a, b, &[1, 2, 3, 4]);
        assert!(Headers::parse(&good).is_some());
        for cut in [0, 13, 20, 40, good.len() - 1] {
            assert!(Headers::parse(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut bad_len = good.clone();
        bad_len[ETH_LEN + 20 + 5] = 200;
        assert!(Headers::parse(&bad_len).is_none());
        let mut tcp = good.clone();
        tcp[ETH_LEN + 9] = 6;
        assert!(Headers::parse(&tcp).is_none());
    }

    #[test]
    fn incremental_checksum_matches_rfc1624() {
        // From RFC 1624 section 4: HC 0xdd2f, m 0x5555 -> m' 0x3285 gives 0x0000.
        assert_eq!(csum_replace(0xdd2f, 0x5555, 0x3285), 0x0000);
    }
}
