//! One packet worker: a thread pinned to a core, with its own io_uring, its
//! own receive buffers and its own share of the sockets and flows.
//!
//! Each owned socket has a multishot `recvmsg` armed on the buffer ring; a
//! received packet is checked against its flow, accounted, and sent from the
//! flow's source socket straight out of the receive buffer (no copy). The
//! buffer returns to the ring when the send completes. Completions are taken
//! in bursts; sends are submitted once per burst. Flow changes arrive on a
//! channel and are applied between bursts; an eventfd wakes the worker.

use super::bufring::BufRing;
use super::relay_socket::RelaySocket;
use super::shared::{sockaddr_from, sockaddr_to, FlowShared, WorkerCounters};
use crate::quality::RtpTracker;
use crate::wire::{rtcp, rtp};
use crossbeam_channel::Receiver;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

const OP_RECV: u64 = 1 << 56;
const OP_SEND: u64 = 2 << 56;
const OP_WAKE: u64 = 3 << 56;
const OP_CANCEL: u64 = 4 << 56;
const OP_MASK: u64 = 0xff << 56;
/// Room for a `sockaddr_in6` in each received buffer.
const NAME_LEN: u32 = std::mem::size_of::<libc::sockaddr_in6>() as u32;

/// A flow as one worker holds it.
pub struct WorkerFlow {
    pub shared: Arc<FlowShared>,
    pub follow: Option<Arc<FlowShared>>,
    pub destination: SocketAddr,
    pub send_socket: Arc<RelaySocket>,
    pub learn: bool,
    pub strict: bool,
    pub expect: Option<SocketAddr>,
    pub tracker: RtpTracker,
}

pub enum Message {
    AddSocket { id: u32, socket: Arc<RelaySocket> },
    SetFlow { id: u32, flow: Box<WorkerFlow> },
    ClearFlow { id: u32 },
    RemoveSocket { id: u32 },
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
    wake: Arc<OwnedFd>,
    wake_buf: Box<u64>,
    counters: Arc<WorkerCounters>,
    burst: usize,
    buf_size: usize,
}

impl Worker {
    pub fn new(
        inbox: Receiver<Message>,
        wake: Arc<OwnedFd>,
        counters: Arc<WorkerCounters>,
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
            wake,
            wake_buf: Box::new(0),
            counters,
            burst,
            buf_size,
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
            types::Fd(self.wake.as_raw_fd()),
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
        loop {
            if let Err(e) = self.ring.submit_and_wait(1) {
                if e.raw_os_error() != Some(libc::EINTR) {
                    tracing::error!(error = %e, "io_uring submit failed; worker stops");
                    return;
                }
            }
            let mut woken = false;
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
                        OP_WAKE => woken = true,
                        _ => {} // cancellation acknowledgements
                    }
                }
                self.bufs.publish();
                let _ = self.ring.submit();
            }
            if woken {
                if !self.apply_messages() {
                    return;
                }
                self.arm_wake();
            }
        }
    }

    /// Applies queued flow changes; false when told to stop.
    fn apply_messages(&mut self) -> bool {
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
                Message::SetFlow { id, flow } => {
                    if let Some(Some(s)) = self.slots.get_mut(id as usize) {
                        s.flow = Some(flow);
                    }
                }
                Message::ClearFlow { id } => {
                    if let Some(Some(s)) = self.slots.get_mut(id as usize) {
                        s.flow = None;
                    }
                }
                Message::RemoveSocket { id } => {
                    if let Some(Some(s)) = self.slots.get_mut(id as usize) {
                        s.closing = true;
                        s.flow = None;
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
        let Some(Some(slot)) = self.slots.get_mut(id as usize) else {
            return false;
        };
        let Some(flow) = slot.flow.as_deref_mut() else {
            c.no_flow.inc();
            return false;
        };
        let now = crate::backend::monotonic_ns();
        let s = &flow.shared;
        if flow.learn && s.learned.load().is_none() {
            s.learned.store(Some(Arc::new(src)));
        }
        if flow.strict {
            let ok = match flow.expect {
                Some(e) => e == src,
                None => s.learned.load().as_deref().is_none_or(|l| *l == src),
            };
            if !ok {
                s.dropped_source.inc();
                c.drop_source.inc();
                return false;
            }
        }
        s.packets.inc();
        s.bytes.add(payload.len() as u64);
        s.last_seen_ns.set(now);
        if let Ok(r) = rtp::Packet::new_checked(payload) {
            flow.tracker
                .on_packet(now, r.ssrc(), r.sequence(), r.timestamp());
            s.publish_rtp(&flow.tracker.quality());
        } else if rtcp::Packet::new_checked(payload).is_ok() {
            s.rtcp_packets.inc();
        }
        let dest = flow
            .follow
            .as_ref()
            .and_then(|f| f.learned.load().as_deref().copied())
            .unwrap_or(flow.destination);
        let fd = flow.send_socket.as_raw_fd();
        self.sending[bid as usize] = Some(flow.send_socket.clone());

        // The payload sits at a fixed offset in the buffer; send it from there.
        let offset = payload.as_ptr() as usize - buf.as_ptr() as usize;
        let base = self.bufs.get(bid, self.buf_size).as_ptr();
        let slot = &mut self.sends[bid as usize];
        slot.addr_len(dest);
        // SAFETY: base + offset .. + len lies inside buffer `bid`, which stays
        // out of the ring until this send completes.
        slot.iov.iov_base = unsafe { base.add(offset) } as *mut libc::c_void;
        slot.iov.iov_len = payload.len();
        slot.hdr.msg_iov = &mut slot.iov;
        slot.hdr.msg_iovlen = 1;
        let e = opcode::SendMsg::new(types::Fd(fd), &slot.hdr)
            .build()
            .user_data(OP_SEND | bid as u64);
        c.forwarded.inc();
        self.push(e);
        true
    }
}

impl SendSlot {
    fn addr_len(&mut self, dest: SocketAddr) {
        let len = sockaddr_to(dest, &mut self.addr);
        self.hdr.msg_name = &mut self.addr as *mut _ as *mut libc::c_void;
        self.hdr.msg_namelen = len;
    }
}
