//! The socket backend: the portable path and the baseline the XDP path is
//! measured against. Packets go through the kernel's UDP sockets, driven by
//! io_uring on worker threads pinned to the configured cores.
//!
//! The control thread (this module) binds one UDP socket per local address a
//! flow uses (its `local` and its `source`), hands each socket to a worker
//! (round robin), and sends each flow to the worker that owns its `local`
//! socket. Workers never take a lock: they learn of changes by message.

mod bufring;
mod doorbell;
mod relay_socket;
mod shared;
mod worker;

use super::{Backend, BackendError, FlowCounters, WorkerReport};
use crate::config::SocketConfig;
use crate::flow::{Flow, FlowError};
use crate::pipeline::{Event, PipelineFlow, SharedCounters, StageSpec};
use crate::quality::RtpTracker;
use crossbeam_channel::{Receiver, Sender};
use doorbell::Doorbell;
use relay_socket::{Closed, RelaySocket};
use shared::{FlowStats, WorkerCounters};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use worker::{Message, Worker, WorkerFlow, WorkerShared};

struct WorkerHandle {
    core: usize,
    tx: Sender<Message>,
    doorbell: Arc<Doorbell>,
    counters: Arc<WorkerCounters>,
    pipeline: Arc<SharedCounters>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    fn send(&self, m: Message) {
        if self.tx.send(m).is_ok() {
            self.doorbell.ring();
        }
    }
}

struct Bound {
    id: u32,
    worker: usize,
    socket: Arc<RelaySocket>,
    /// Flows using this socket as their `local` or `source`.
    users: u32,
}

pub struct SocketBackend {
    workers: Vec<WorkerHandle>,
    sockets: HashMap<SocketAddr, Bound>,
    /// Installed flows' counters, by local address.
    flows: HashMap<SocketAddr, Arc<FlowStats>>,
    /// Learned-source holders by local address, so a flow can follow another
    /// installed before or after it.
    shared: HashMap<SocketAddr, Arc<FlowStats>>,
    next_id: u32,
    /// Ids of sockets that are closed (their notice came), for reuse.
    free_ids: Vec<u32>,
    next_worker: usize,
    /// Addresses whose socket was let go of but is not closed yet, with
    /// that socket's id (a late notice of an older socket there is ignored).
    closing: HashMap<SocketAddr, u32>,
    closed_tx: Sender<Closed>,
    closed: Receiver<Closed>,
    /// Pipeline events from every worker.
    events: Receiver<Event>,
}

/// How long binding an address waits for its previous socket to close
/// before the flow is refused.
const REBIND_WAIT: Duration = Duration::from_secs(1);

impl SocketBackend {
    /// Starts one worker per core in `cores`.
    pub fn start(cfg: &SocketConfig, cores: &[usize]) -> Result<Self, BackendError> {
        let mut workers = Vec::new();
        let (events_tx, events) = crossbeam_channel::bounded(super::EVENT_QUEUE);
        for &core in cores {
            let (tx, rx) = crossbeam_channel::unbounded();
            let doorbell = Arc::new(
                Doorbell::new().map_err(|e| BackendError::Other(format!("eventfd: {e}")))?,
            );
            let counters = Arc::new(WorkerCounters::default());
            let pipeline = Arc::new(SharedCounters::default());
            // The worker is built on its own thread (its ring memory never
            // moves between threads); setup errors come back on `ready`.
            let (ready_tx, ready) = crossbeam_channel::bounded(1);
            let w_doorbell = doorbell.clone();
            let shared = WorkerShared {
                counters: counters.clone(),
                pipeline: pipeline.clone(),
                events: events_tx.clone(),
            };
            let (buffers, buf_size, burst) = (
                cfg.buffers as u16,
                cfg.buffer_size as usize,
                cfg.burst as usize,
            );
            let thread = std::thread::Builder::new()
                .name(format!("tg-worker-{core}"))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        tracing::warn!(core, "could not pin the worker to its core");
                    }
                    match Worker::new(rx, w_doorbell, shared, buffers, buf_size, burst) {
                        Ok(w) => {
                            let _ = ready_tx.send(Ok(()));
                            w.run()
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })
                .map_err(|e| BackendError::Other(format!("spawning a worker: {e}")))?;
            ready
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("worker thread exited during setup")))
                .map_err(|e| {
                    BackendError::Other(format!(
                        "io_uring setup for the worker on core {core}: {e}"
                    ))
                })?;
            tracing::info!(core, "socket worker started");
            workers.push(WorkerHandle {
                core,
                tx,
                doorbell,
                counters,
                pipeline,
                thread: Some(thread),
            });
        }
        let (closed_tx, closed) = crossbeam_channel::unbounded();
        Ok(SocketBackend {
            workers,
            sockets: HashMap::new(),
            flows: HashMap::new(),
            shared: HashMap::new(),
            next_id: 0,
            free_ids: Vec::new(),
            next_worker: 0,
            closing: HashMap::new(),
            closed_tx,
            closed,
            events,
        })
    }

    /// The bound socket for `addr`, binding and handing it to a worker if new.
    fn acquire(
        &mut self,
        addr: SocketAddr,
        egress: Option<&str>,
    ) -> Result<Arc<RelaySocket>, BackendError> {
        if let Some(b) = self.sockets.get_mut(&addr) {
            b.users += 1;
            return Ok(b.socket.clone());
        }
        let sock = self
            .bind_when_closed(addr)
            .map_err(|source| BackendError::Bind { addr, source })?;
        let fd: OwnedFd = sock.into();
        set_rcvbuf(&fd, 4 << 20);
        if let Some(dev) = egress {
            bind_to_device(&fd, dev).map_err(|source| BackendError::Bind { addr, source })?;
        }
        let id = self.free_ids.pop().unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id - 1
        });
        let socket = Arc::new(RelaySocket::new(fd, id, addr, self.closed_tx.clone()));
        let worker = self.next_worker;
        self.next_worker = (self.next_worker + 1) % self.workers.len();
        self.workers[worker].send(Message::AddSocket {
            id,
            socket: socket.clone(),
        });
        self.sockets.insert(
            addr,
            Bound {
                id,
                worker,
                socket: socket.clone(),
                users: 1,
            },
        );
        Ok(socket)
    }

    fn release(&mut self, addr: SocketAddr) {
        let Some(b) = self.sockets.get_mut(&addr) else {
            return;
        };
        b.users -= 1;
        if b.users == 0 {
            let b = self.sockets.remove(&addr).expect("present");
            self.workers[b.worker].send(Message::RemoveSocket { id: b.id });
            // The id and the address are reused once the socket is closed.
            self.closing.insert(addr, b.id);
        }
    }

    /// Takes in one close notice: its id and address are free again.
    fn reap(&mut self, notice: Closed) {
        if self.closing.get(&notice.addr) == Some(&notice.id) {
            self.closing.remove(&notice.addr);
        }
        self.free_ids.push(notice.id);
    }

    /// Binds `addr`, first waiting (up to [`REBIND_WAIT`]) for a previous
    /// socket on it to be closed by the workers still holding it.
    fn bind_when_closed(&mut self, addr: SocketAddr) -> io::Result<UdpSocket> {
        while let Ok(n) = self.closed.try_recv() {
            self.reap(n);
        }
        let deadline = Instant::now() + REBIND_WAIT;
        loop {
            let in_use = match UdpSocket::bind(addr) {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => e,
                done => {
                    if done.is_ok() {
                        self.closing.remove(&addr); // its notice may still come
                    }
                    return done;
                }
            };
            // Still ours and closing: the workers let go of it (their receive
            // cancelled, their sends completed) within microseconds.
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Err(in_use);
            }
            match self.closed.recv_timeout(wait.min(Duration::from_millis(5))) {
                Ok(n) => self.reap(n),
                Err(_) if self.closing.contains_key(&addr) => {}
                // Not ours: someone else holds the port.
                Err(_) => return Err(in_use),
            }
        }
    }

    /// Lets go of the sockets `flow` held.
    fn release_flow_sockets(&mut self, flow: &Flow) {
        self.release(flow.local);
        self.release(flow.source);
        if let Some(rtcp) = rtcp_source(flow) {
            self.release(rtcp);
        }
    }

    fn shared_for(&mut self, local: SocketAddr) -> Arc<FlowStats> {
        self.shared.entry(local).or_default().clone()
    }
}

fn set_rcvbuf(fd: &OwnedFd, bytes: libc::c_int) {
    // SAFETY: setsockopt with an int option value.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &bytes as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
}

fn bind_to_device(fd: &OwnedFd, dev: &str) -> io::Result<()> {
    // SAFETY: setsockopt with the name bytes and their length.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            dev.as_ptr() as *const libc::c_void,
            dev.len() as u32,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Backend for SocketBackend {
    fn name(&self) -> &'static str {
        "socket"
    }

    fn put(&mut self, flow: &Flow, previous: Option<&Flow>) -> Result<(), BackendError> {
        if let Some(e) = &flow.egress {
            if crate::backend::ifindex(e).is_none() {
                return Err(FlowError::NoSuchInterface {
                    local: flow.local,
                    name: e.clone(),
                }
                .into());
            }
        }
        // Acquire the new sockets before releasing the old ones, so an update
        // that keeps an address keeps its socket.
        self.acquire(flow.local, None)?;
        let send_socket = match self.acquire(flow.source, flow.egress.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                self.release(flow.local);
                return Err(e);
            }
        };
        let rtcp_socket = match rtcp_source(flow) {
            None => None,
            Some(addr) => match self.acquire(addr, flow.egress.as_deref()) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.release(flow.local);
                    self.release(flow.source);
                    return Err(e);
                }
            },
        };
        if let Some(p) = previous {
            self.release_flow_sockets(p);
        }
        let shared = self.shared_for(flow.local);
        if previous.is_some() {
            shared.learned.store(None);
        }
        let follow = flow.follow.map(|f| self.shared_for(f));
        let wf = WorkerFlow {
            shared: shared.clone(),
            follow,
            destination: flow.destination,
            send_socket,
            rtcp_socket,
            learn: flow.learn,
            strict: flow.strict,
            expect: flow.expect,
            tracker: RtpTracker::new(flow.clock_rate),
        };
        let b = &self.sockets[&flow.local];
        let stages = (!flow.stages.is_empty()).then(|| PipelineFlow::new(flow));
        self.workers[b.worker].send(Message::SetFlow {
            id: b.id,
            flow: Box::new(wf),
            stages,
        });
        self.flows.insert(flow.local, shared);
        Ok(())
    }

    fn remove(&mut self, flow: &Flow) -> Result<(), BackendError> {
        if let Some(b) = self.sockets.get(&flow.local) {
            self.workers[b.worker].send(Message::ClearFlow { id: b.id });
        }
        self.flows.remove(&flow.local);
        // A new flow on this address starts with fresh counters; followers
        // that still point here keep the old holder until they change.
        self.shared.remove(&flow.local);
        self.release_flow_sockets(flow);
        Ok(())
    }

    fn flow_counters(&self, flow: &Flow) -> FlowCounters {
        self.flows
            .get(&flow.local)
            .map_or_else(FlowCounters::default, |s| s.counters())
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let mut totals =
            super::stats::sum_by_name(self.workers.iter().map(|w| w.counters.named().to_vec()));
        totals.push(("sockets".into(), self.sockets.len() as u64));
        totals.push(("workers".into(), self.workers.len() as u64));
        totals
    }

    fn adopted(&self) -> Vec<Flow> {
        Vec::new()
    }

    fn workers(&self) -> Vec<WorkerReport> {
        let mut flows = vec![0; self.workers.len()];
        for (addr, b) in &self.sockets {
            if self.flows.contains_key(addr) {
                flows[b.worker] += 1;
            }
        }
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let c = &w.counters;
                let named = c.named();
                WorkerReport {
                    worker: i,
                    core: w.core,
                    flows: flows[i],
                    rx_packets: c.rx.get(),
                    tx_packets: c.forwarded.get(),
                    rx_bytes: c.rx_bytes.get(),
                    tx_bytes: c.tx_bytes.get(),
                    busy_ns: c.busy_ns.get(),
                    uptime_ns: c.uptime_ns.get(),
                    drops: named
                        .into_iter()
                        .filter(|(n, _)| n.starts_with("drop_"))
                        .map(|(n, v)| (n.into(), v))
                        .collect(),
                    pipeline: w.pipeline.load(),
                }
            })
            .collect()
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.events.try_iter().collect()
    }
}

/// The relay's RTCP address (source port + 1) for a flow that demuxes RTCP.
fn rtcp_source(flow: &Flow) -> Option<SocketAddr> {
    flow.stages.contains(&StageSpec::RtcpDemux).then(|| {
        let mut a = flow.source;
        a.set_port(a.port().wrapping_add(1));
        a
    })
}

impl Drop for SocketBackend {
    fn drop(&mut self) {
        for w in &self.workers {
            w.send(Message::Stop);
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(local: SocketAddr, source: SocketAddr) -> Flow {
        Flow {
            learn: true,
            ..Flow::relay(local, source, "127.0.0.1:9".parse().unwrap())
        }
    }

    /// A port freed by one call and handed straight to the next: the second
    /// flow waits for the first one's socket to close instead of failing to
    /// bind it. Two workers, so the send socket is also held by the other
    /// worker's flow.
    #[test]
    fn an_address_is_rebound_as_soon_as_its_flow_is_removed() {
        let cores: Vec<usize> = vec![0, 1 % host_cores_for_test()];
        let mut b = SocketBackend::start(&SocketConfig::default(), &cores).expect("io_uring");
        let a: SocketAddr = "127.0.0.1:21910".parse().unwrap();
        let z: SocketAddr = "127.0.0.1:21912".parse().unwrap();
        for round in 0..300 {
            let (f, r) = (flow(a, z), flow(z, a));
            b.put(&f, None)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            b.put(&r, None)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            b.remove(&f).unwrap();
            b.remove(&r).unwrap();
        }
        // Everything let go of is closed in the end, and the ids come back.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !b.closing.is_empty() && Instant::now() < deadline {
            if let Ok(n) = b.closed.recv_timeout(Duration::from_millis(10)) {
                b.reap(n);
            }
        }
        assert!(b.closing.is_empty(), "still closing: {:?}", b.closing);
        assert!(b.sockets.is_empty());
        assert!(b.free_ids.len() >= 2 && b.next_id as usize <= b.free_ids.len());
    }

    /// A late notice of an older socket on an address does not end the
    /// wait for the newer one closing there.
    #[test]
    fn a_late_notice_of_an_older_socket_is_ignored() {
        let mut b = SocketBackend::start(&SocketConfig::default(), &[0]).expect("io_uring");
        let a: SocketAddr = "127.0.0.1:21914".parse().unwrap();
        b.closing.insert(a, 2);
        b.reap(Closed { id: 1, addr: a });
        assert_eq!(b.closing.get(&a), Some(&2));
        b.reap(Closed { id: 2, addr: a });
        assert!(b.closing.is_empty());
        assert_eq!(b.free_ids, [1, 2]);
    }

    fn host_cores_for_test() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}
