//! One packet worker: a thread pinned to a core, with its own io_uring, its
//! own receive buffers and its own share of the sockets and flows.
//!
//! Each owned socket has a multishot `recvmsg` armed on the buffer ring; a
//! received packet is checked against its flow, accounted, and sent from the
//! flow's source socket straight out of the receive buffer (no copy). The
//! buffer returns to the ring when the send completes. Completions are taken
//! in bursts; sends are submitted once per burst. Flow changes arrive on a
//! channel and are applied between bursts; its [`Doorbell`] wakes the worker.
//!
//! A flow with stages runs them in the worker's [`Pipeline`] on the payload
//! in place before the send. Packets its stages originate go out of a small
//! pool of send buffers of their own, on the pipeline's 20 ms tick (the wait
//! for completions is bounded by the next deadline).

use super::bufring::BufRing;
use super::doorbell::Doorbell;
use super::relay_socket::RelaySocket;
use super::shared::{sockaddr_from, sockaddr_to, FlowStats, WorkerCounters};
use crate::backend::monotonic_ns;
use crate::pipeline::{EventSink, Payload, Pipeline, PipelineFlow, SharedCounters, Verdict};
use crate::quality::RtpTracker;
use crossbeam_channel::Receiver;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

const OP_RECV: u64 = 1 << 56;
const OP_SEND: u64 = 2 << 56;
const OP_WAKE: u64 = 3 << 56;
const OP_CANCEL: u64 = 4 << 56;
const OP_ORIGIN: u64 = 5 << 56;
/// Send buffers for packets stages originate, per worker.
const ORIGIN_BUFFERS: usize = 256;
const ORIGIN_SIZE: usize = 1500;
const OP_MASK: u64 = 0xff << 56;
/// Room for a `sockaddr_in6` in each received buffer.
const NAME_LEN: u32 = std::mem::size_of::<libc::sockaddr_in6>() as u32;

/// A flow as one worker holds it.
pub struct WorkerFlow {
    pub shared: Arc<FlowStats>,
    pub follow: Option<Arc<FlowStats>>,
    pub destination: SocketAddr,
    pub send_socket: Arc<RelaySocket>,
    /// The relay's RTCP port (source + 1), for a flow that demuxes RTCP.
    pub rtcp_socket: Option<Arc<RelaySocket>>,
    pub learn: bool,
    pub strict: bool,
    pub expect: Option<SocketAddr>,
    pub tracker: RtpTracker,
}

pub enum Message {
    AddSocket {
        id: u32,
        socket: Arc<RelaySocket>,
    },
    /// Installs a flow; with `stages`, it runs through the pipeline.
    SetFlow {
        id: u32,
        flow: Box<WorkerFlow>,
        stages: Option<PipelineFlow>,
    },
    ClearFlow {
        id: u32,
    },
    RemoveSocket {
        id: u32,
    },
    Stop,
}

struct Slot {
    socket: Arc<RelaySocket>,
    flow: Option<Box<WorkerFlow>>,
    closing: bool,
}

/// In-flight send state for one buffer: must stay put until the send completes.
#[repr(C)]
struct SendSlot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_storage,
}

pub struct Worker {
    // Field order matters: the ring is dropped before the buffers it uses.
    ring: IoUring,
    bufs: BufRing,
    sends: Box<[SendSlot]>,
    /// The socket each in-flight send goes out of, held until the send
    /// completes: its port stays ours (and its descriptor number is not
    /// reused) while the kernel may still use it.
    sending: Box<[Option<Arc<RelaySocket>>]>,
    recv_hdr: Box<libc::msghdr>,
    slots: Vec<Option<Slot>>,
    inbox: Receiver<Message>,
    doorbell: Arc<Doorbell>,
    wake_buf: Box<u64>,
    counters: Arc<WorkerCounters>,
    burst: usize,
    buf_size: usize,
    pipeline: Pipeline,
    pipeline_counters: Arc<SharedCounters>,
    origin: OriginPool,
}

/// Send buffers for originated packets: each stays put until its send
/// completes, then returns to the free list.
struct OriginPool {
    bufs: Box<[[u8; ORIGIN_SIZE]]>,
    sends: Box<[SendSlot]>,
    sending: Box<[Option<Arc<RelaySocket>>]>,
    free: Vec<u16>,
    /// Where a tick writes each packet before it is copied to a free buffer.
    scratch: Box<[u8; ORIGIN_SIZE]>,
}

impl OriginPool {
    fn new() -> Self {
        OriginPool {
            bufs: vec![[0u8; ORIGIN_SIZE]; ORIGIN_BUFFERS].into_boxed_slice(),
            // SAFETY: all-zero is a valid msghdr/iovec/sockaddr_storage.
            sends: (0..ORIGIN_BUFFERS)
                .map(|_| unsafe { std::mem::zeroed::<SendSlot>() })
                .collect(),
            sending: (0..ORIGIN_BUFFERS).map(|_| None).collect(),
            free: (0..ORIGIN_BUFFERS as u16).rev().collect(),
            scratch: Box::new([0u8; ORIGIN_SIZE]),
        }
    }
}

/// What a worker shares with its backend besides messages.
pub struct WorkerShared {
    pub counters: Arc<WorkerCounters>,
    pub pipeline: Arc<SharedCounters>,
    pub events: EventSink,
}

impl Worker {
    pub fn new(
        inbox: Receiver<Message>,
        doorbell: Arc<Doorbell>,
        shared: WorkerShared,
        buffers: u16,
        buf_size: usize,
        burst: usize,
    ) -> std::io::Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .build(buffers as u32 * 2)?;
        let bufs = BufRing::new(&ring, buffers, buf_size, 0)?;
        // SAFETY: all-zero is a valid msghdr/iovec/sockaddr_storage.
        let sends = (0..buffers)
            .map(|_| unsafe { std::mem::zeroed::<SendSlot>() })
            .collect();
        let sending = (0..buffers).map(|_| None).collect();
        let mut recv_hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_hdr.msg_namelen = NAME_LEN;
        Ok(Worker {
            ring,
            bufs,
            sends,
            sending,
            recv_hdr,
            slots: Vec::new(),
            inbox,
            doorbell,
            wake_buf: Box::new(0),
            counters: shared.counters,
            burst,
            buf_size,
            pipeline: Pipeline::new(shared.events),
            pipeline_counters: shared.pipeline,
            origin: OriginPool::new(),
        })
    }

    fn push(&mut self, e: squeue::Entry) {
        // SAFETY: every entry points at memory owned by self that outlives the op.
        while unsafe { self.ring.submission().push(&e) }.is_err() {
            let _ = self.ring.submit();
        }
    }

    fn arm_recv(&mut self, id: u32) {
        let Some(Some(slot)) = self.slots.get(id as usize) else {
            return;
        };
        let e = opcode::RecvMsgMulti::new(
            types::Fd(slot.socket.as_raw_fd()),
            &*self.recv_hdr,
            self.bufs.group,
        )
        .build()
        .user_data(OP_RECV | id as u64);
        self.push(e);
    }

    fn arm_wake(&mut self) {
        let e = opcode::Read::new(
            types::Fd(self.doorbell.raw_fd()),
            &mut *self.wake_buf as *mut u64 as *mut u8,
            8,
        )
        .build()
        .user_data(OP_WAKE);
        self.push(e);
    }

    /// Runs until a [`Message::Stop`] arrives.
    pub fn run(mut self) {
        self.arm_wake();
        let mut batch: Vec<cqueue::Entry> = Vec::with_capacity(self.burst);
        let started = monotonic_ns();
        let mut idle_ns = 0;
        loop {
            let before = monotonic_ns();
            if let Err(e) = self.wait() {
                tracing::error!(error = %e, "io_uring submit failed; worker stops");
                return;
            }
            let now = monotonic_ns();
            idle_ns += now - before;
            self.counters
                .busy_ns
                .set((now - started).saturating_sub(idle_ns));
            self.counters.uptime_ns.set(now - started);
            self.originate(now);
            loop {
                batch.clear();
                batch.extend(self.ring.completion().take(self.burst));
                if batch.is_empty() {
                    break;
                }
                for cqe in &batch {
                    match cqe.user_data() & OP_MASK {
                        OP_RECV => self.on_recv(cqe),
                        OP_SEND => self.on_send(cqe),
                        OP_ORIGIN => self.on_origin_sent(cqe),
                        // In completion order: a packet that came after a
                        // flow change meets the change (a removed flow
                        // forwards nothing once `flow_del` has answered).
                        OP_WAKE => {
                            if !self.apply_messages() {
                                return;
                            }
                            self.arm_wake();
                        }
                        _ => {} // cancellation acknowledgements
                    }
                }
                self.bufs.publish();
                self.pipeline_counters.store(self.pipeline.counters());
                let _ = self.ring.submit();
            }
        }
    }

    /// Waits for at least one completion, or until the pipeline's next
    /// originated packet is due.
    fn wait(&mut self) -> std::io::Result<()> {
        let r = match self.pipeline.next_deadline() {
            None => self.ring.submit_and_wait(1),
            Some(due) => {
                let wait = due.saturating_sub(monotonic_ns());
                let ts = types::Timespec::new()
                    .sec(wait / 1_000_000_000)
                    .nsec((wait % 1_000_000_000) as u32);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match r {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ETIME)) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Sends what the pipeline's originating stages have due by `now`.
    fn originate(&mut self, now: u64) {
        let Worker {
            pipeline,
            origin,
            slots,
            ring,
            counters,
            ..
        } = self;
        let scratch = &mut origin.scratch[..];
        pipeline.tick(now, scratch, |id, payload| {
            let Some(flow) = slots
                .get(id as usize)
                .and_then(Option::as_ref)
                .and_then(|s| s.flow.as_deref())
            else {
                return;
            };
            let Some(b) = origin.free.pop() else {
                counters.origin_dropped.inc();
                return;
            };
            let i = b as usize;
            origin.bufs[i][..payload.len()].copy_from_slice(payload.bytes());
            let slot = &mut origin.sends[i];
            slot.prepare(
                flow.current_destination(),
                &mut origin.bufs[i][..payload.len()],
            );
            origin.sending[i] = Some(flow.send_socket.clone());
            let e = opcode::SendMsg::new(types::Fd(flow.send_socket.as_raw_fd()), &slot.hdr)
                .build()
                .user_data(OP_ORIGIN | b as u64);
            // SAFETY: the entry points at origin buffer `b`, which stays out
            // of the free list until this send completes.
            while unsafe { ring.submission().push(&e) }.is_err() {
                let _ = ring.submit();
            }
        });
    }

    fn on_origin_sent(&mut self, cqe: &cqueue::Entry) {
        if cqe.result() < 0 {
            self.counters.send_errors.inc();
        }
        let b = (cqe.user_data() & 0xffff) as u16;
        self.origin.sending[b as usize] = None;
        self.origin.free.push(b);
    }

    /// Applies queued flow changes; false when told to stop.
    fn apply_messages(&mut self) -> bool {
        self.doorbell.answer();
        while let Ok(m) = self.inbox.try_recv() {
            match m {
                Message::AddSocket { id, socket } => {
                    let i = id as usize;
                    if self.slots.len() <= i {
                        self.slots.resize_with(i + 1, || None);
                    }
                    self.slots[i] = Some(Slot {
                        socket,
                        flow: None,
                        closing: false,
                    });
                    self.arm_recv(id);
                }
                Message::SetFlow { id, flow, stages } => {
                    if let Some(Some(s)) = self.slots.get_mut(id as usize) {
                        s.flow = Some(flow);
                        match stages {
                            Some(p) => self.pipeline.install(id, p),
                            None => drop(self.pipeline.remove(id)),
                        }
                    }
                }
                Message::ClearFlow { id } => {
                    if let Some(Some(s)) = self.slots.get_mut(id as usize) {
                        s.flow = None;
                    }
                    self.pipeline.remove(id);
                }
                Message::RemoveSocket { id } => {
                    if let Some(Some(s)) = self.slots.get_mut(id as usize) {
                        s.closing = true;
                        s.flow = None;
                        self.pipeline.remove(id);
                        let e = opcode::AsyncCancel::new(OP_RECV | id as u64)
                            .build()
                            .user_data(OP_CANCEL);
                        self.push(e);
                    }
                }
                Message::Stop => return false,
            }
        }
        true
    }

    fn on_send(&mut self, cqe: &cqueue::Entry) {
        if cqe.result() < 0 {
            self.counters.send_errors.inc();
        }
        let bid = (cqe.user_data() & 0xffff) as u16;
        self.sending[bid as usize] = None;
        self.bufs.give(bid);
    }

    fn on_recv(&mut self, cqe: &cqueue::Entry) {
        let id = (cqe.user_data() & 0xffff_ffff) as u32;
        let more = cqueue::more(cqe.flags());
        let bid = cqueue::buffer_select(cqe.flags());
        let res = cqe.result();
        if res >= 0 {
            if let Some(bid) = bid {
                if !self.forward(id, bid, res as usize) {
                    self.bufs.give(bid);
                }
            }
        } else if res != -libc::ECANCELED && res != -libc::ENOBUFS {
            self.counters.recv_errors.inc();
        }
        if !more {
            let closing = match self.slots.get(id as usize) {
                Some(Some(s)) => s.closing,
                _ => return,
            };
            if closing {
                self.slots[id as usize] = None; // drops our handle on the socket
            } else {
                self.arm_recv(id);
            }
        }
    }

    /// Handles one received packet; true if a send now owns the buffer.
    fn forward(&mut self, id: u32, bid: u16, len: usize) -> bool {
        let c = &self.counters;
        c.rx.inc();
        let buf = self.bufs.get(bid, len);
        let Ok(msg) = types::RecvMsgOut::parse(buf, &self.recv_hdr) else {
            c.malformed.inc();
            return false;
        };
        if msg.is_payload_truncated() || msg.is_name_data_truncated() {
            c.malformed.inc();
            return false;
        }
        let Some(src) = sockaddr_from(msg.name_data()) else {
            c.malformed.inc();
            return false;
        };
        let payload = msg.payload_data();
        c.rx_bytes.add(payload.len() as u64);
        let Some(Some(slot)) = self.slots.get_mut(id as usize) else {
            return false;
        };
        let Some(flow) = slot.flow.as_deref_mut() else {
            c.no_flow.inc();
            return false;
        };
        let now = crate::backend::monotonic_ns();
        if !flow.admit(src, payload, now) {
            c.drop_source.inc();
            return false;
        }
        let mut dest = flow.current_destination();
        let mut socket = &flow.send_socket;
        // The payload sits at a fixed offset in the buffer; stages work on it
        // there and it is sent from there.
        let (offset, mut len) = (
            payload.as_ptr() as usize - buf.as_ptr() as usize,
            payload.len(),
        );
        if self.pipeline.has(id) {
            let room = self.bufs.get_mut(bid, self.buf_size);
            let mut p = Payload::new(&mut room[offset..], len);
            match self.pipeline.process(now, id, &mut p) {
                Verdict::Forward => {}
                Verdict::ForwardRtcp => match &flow.rtcp_socket {
                    Some(s) => {
                        socket = s;
                        dest.set_port(dest.port().wrapping_add(1));
                    }
                    None => return false,
                },
                Verdict::Drop(_) => return false,
            }
            len = p.len();
        }
        let fd = socket.as_raw_fd();
        self.sending[bid as usize] = Some(socket.clone());
        let room = self.bufs.get_mut(bid, self.buf_size);
        // Buffer `bid` stays out of the ring until this send completes.
        self.sends[bid as usize].prepare(dest, &mut room[offset..offset + len]);
        let e = opcode::SendMsg::new(types::Fd(fd), &self.sends[bid as usize].hdr)
            .build()
            .user_data(OP_SEND | bid as u64);
        c.forwarded.inc();
        c.tx_bytes.add(len as u64);
        self.push(e);
        true
    }
}

impl WorkerFlow {
    /// Learns and checks the source of a packet, and counts it (with its RTP
    /// quality or RTCP) if it is admitted; false: a strict flow's stranger.
    fn admit(&mut self, src: SocketAddr, payload: &[u8], now: u64) -> bool {
        let s = &self.shared;
        if self.learn && s.learned.load().is_none() {
            s.learned.store(Some(Arc::new(src)));
        }
        if self.strict {
            let ok = match self.expect {
                Some(e) => e == src,
                None => s.learned.load().as_deref().is_none_or(|l| *l == src),
            };
            if !ok {
                s.dropped_source.inc();
                return false;
            }
        }
        s.packets.inc();
        s.bytes.add(payload.len() as u64);
        s.last_seen_ns.set(now);
        s.measure(&mut self.tracker, self.follow.as_deref(), payload, now);
        true
    }

    /// Where packets go now: the followed flow's learned peer, if any.
    fn current_destination(&self) -> SocketAddr {
        self.follow
            .as_ref()
            .and_then(|f| f.learned.load().as_deref().copied())
            .unwrap_or(self.destination)
    }
}

impl SendSlot {
    /// Points the message at `dest` and at `data`, which must stay put (and
    /// this slot too) until the send completes.
    fn prepare(&mut self, dest: SocketAddr, data: &mut [u8]) {
        let len = sockaddr_to(dest, &mut self.addr);
        self.hdr.msg_name = &mut self.addr as *mut _ as *mut libc::c_void;
        self.hdr.msg_namelen = len;
        self.iov.iov_base = data.as_mut_ptr() as *mut libc::c_void;
        self.iov.iov_len = data.len();
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
    }
}
