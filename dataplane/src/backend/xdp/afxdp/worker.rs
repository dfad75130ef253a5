//! One AF_XDP worker: its sockets, its pipeline, and the loop that takes
//! frames in, runs the stages, and sends them on (see the module above).

use super::frame::Headers;
use super::origin::Batch;
use super::*;

/// Per-slot state a worker keeps beside the pipeline.
#[derive(Clone, Copy)]
struct SlotRoute {
    route: Route,
}

/// How a worker takes its frames: burst size, idle spin and coalescing.
#[derive(Clone, Copy)]
pub(super) struct Pace {
    pub(super) burst: usize,
    pub(super) spin_ns: u64,
    pub(super) coalesce_ns: u64,
}

pub(super) struct Worker {
    pub(super) xsks: Vec<Xsk>,
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
    pub(super) fn new(
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
            originate_buf: vec![0u8; origin::ORIGINATE_BUF].into_boxed_slice(),
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

    pub(super) fn run(mut self) {
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

    fn sent(&mut self, len: usize) {
        self.count(C::Tx);
        self.counters[C::TxBytes as usize] += len as u64;
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
            self.counters[C::RxBytes as usize] += u64::from(f.len);
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
                self.sent(len);
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
            self.sent(len);
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
            let (s, f) = b.push(r.route, p.bytes());
            counters[C::Originated as usize] += s;
            counters[C::OriginateFailed as usize] += f;
        });
        for b in [&mut *v4, &mut *v6] {
            let (s, f) = b.flush();
            counters[C::Originated as usize] += s;
            counters[C::OriginateFailed as usize] += f;
        }
        (pipeline.counters().originated - before) as usize
    }
}
