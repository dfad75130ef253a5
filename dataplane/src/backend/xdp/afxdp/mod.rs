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
use crossbeam_channel::{Receiver, Sender};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tollgate_ebpf::abi::{XskMeta, XSK_META_MAGIC};
use worker::{Pace, Worker};

mod frame;
mod origin;
mod worker;

pub use origin::build_datagram;

/// Longest sleep: one tick of the pipeline's timer wheel.
const TICK_NS: u64 = crate::pipeline::wheel::TICK_MS as u64 * 1_000_000;
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
    RxBytes,
    TxBytes,
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
    "rx_bytes",
    "tx_bytes",
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
                    rx_bytes: c(C::RxBytes),
                    tx_bytes: c(C::TxBytes),
                    busy_ns: h.shared.busy_ns.get(),
                    uptime_ns: now.saturating_sub(h.started_ns),
                    drops: {
                        let mut d: std::collections::BTreeMap<std::borrow::Cow<'static, str>, u64> =
                            NAMES[FIRST_DROP..]
                                .iter()
                                .enumerate()
                                .map(|(j, n)| {
                                    ((*n).into(), h.shared.counters[FIRST_DROP + j].get())
                                })
                                .collect();
                        // What the kernel dropped before the worker saw it.
                        let k = h.kernel_stats();
                        d.insert("xsk_rx_dropped".into(), k.rx_dropped);
                        d.insert("xsk_rx_ring_full".into(), k.rx_ring_full);
                        d.insert("xsk_rx_invalid".into(), k.rx_invalid);
                        d.insert("xsk_tx_invalid".into(), k.tx_invalid);
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
