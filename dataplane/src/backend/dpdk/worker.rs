//! One DPDK worker: a thread pinned to a core, registered with DPDK, that
//! polls the receive queues of its ports and transmits on its own queue of
//! every port. Per burst: receive, classify, answer neighbours, relay (with
//! the flow's pipeline stages first when it has any), send in bursts per
//! port; then packets waiting for a next hop, originating stages, and flow
//! changes by message. When bursts keep coming back empty it sleeps, for
//! longer each time up to a bound, and spins again once packets come.

use super::eal::{self, Mbuf, Pool, RawMbuf};
use super::neighbour::{self, Answer, Hold, Resolver, Step};
use super::relay::{self, Class, Policy};
use super::shared::{FlowStats, PortCtx, WorkerStats};
use crate::backend::monotonic_ns;
use crate::pipeline::{Payload, Pipeline, PipelineFlow, Slot, Verdict};
use crate::quality::RtpTracker;
use crate::wire::{arp, ethernet};
use crossbeam_channel::Receiver;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A flow as its worker holds it.
pub struct WorkerFlow {
    pub local: SocketAddr,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub policy: Policy,
    pub stats: Arc<FlowStats>,
    pub follow: Option<Arc<FlowStats>>,
    /// Index of the port packets leave from.
    pub egress: usize,
    pub slot: Option<Slot>,
    /// Receive quality of the RTP arriving on the flow.
    pub tracker: RtpTracker,
}

pub enum Message {
    /// Install or replace a flow, with its pipeline when it has stages.
    Put {
        flow: Box<WorkerFlow>,
        pipeline: Option<PipelineFlow>,
    },
    Remove {
        local: SocketAddr,
    },
    Stop,
}

/// Empty polls before the first sleep (a few microseconds of spinning).
const SPINS: u32 = 256;
const FIRST_SLEEP_NS: u64 = 5_000;
/// How often the neighbour tables are aged.
const AGE_EVERY_NS: u64 = 250_000_000;

/// The flow table's hasher: one multiply-and-rotate per word. Its keys
/// are the node's own addresses (installed by the control plane), so a
/// keyed hash buys nothing against collisions here, and SipHash would cost
/// more per packet than the rest of the lookup.
#[derive(Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_ne_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64)
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(i as u64)
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64)
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(23) ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

pub struct Worker {
    pub index: usize,
    pub ports: Arc<[PortCtx]>,
    pub inbox: Receiver<Message>,
    pub stats: Arc<WorkerStats>,
    pub pool: Arc<Pool>,
    pub pipeline: Pipeline,
    pub burst: usize,
    pub max_sleep_ns: u64,
}

struct State {
    /// Indexes of the ports this worker polls.
    polled: Vec<usize>,
    /// This worker's copy of its polled ports' neighbour tables.
    tables: HashMap<usize, neighbour::Table>,
    flows: HashMap<SocketAddr, WorkerFlow, BuildHasherDefault<AddrHasher>>,
    /// Each pipeline slot's flow.
    slots: HashMap<Slot, SocketAddr>,
    resolver: Resolver<Mbuf>,
    /// Packets to send, per port, and their bytes.
    tx: Vec<Vec<RawMbuf>>,
    tx_queued_bytes: Vec<u64>,
    scratch: Vec<u8>,
    /// Reused between bursts: originated frames, resolver steps.
    frames: Vec<(Mbuf, usize, IpAddr)>,
    steps: Vec<Step<Mbuf>>,
    probes: Vec<(usize, IpAddr)>,
    /// When the neighbour tables were last aged.
    aged_ns: u64,
}

impl Worker {
    pub fn run(mut self) {
        let _reg = match eal::ThreadRegistration::new() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(worker = self.index, error = %e, "worker not registered with DPDK; mempool caches unused");
                None
            }
        };
        let polled: Vec<usize> = (0..self.ports.len())
            .filter(|&p| self.ports[p].poller == self.index)
            .collect();
        let mut st = State {
            tables: polled.iter().map(|&p| (p, Default::default())).collect(),
            polled,
            flows: HashMap::default(),
            slots: HashMap::new(),
            resolver: Resolver::default(),
            tx: (0..self.ports.len())
                .map(|_| Vec::with_capacity(self.burst * 2))
                .collect(),
            tx_queued_bytes: vec![0; self.ports.len()],
            scratch: vec![0u8; 2048],
            frames: Vec::new(),
            steps: Vec::new(),
            probes: Vec::new(),
            aged_ns: 0,
        };
        let mut rx: Vec<RawMbuf> = vec![std::ptr::null_mut(); self.burst];
        let start = monotonic_ns();
        let (mut empty, mut sleep_ns) = (0u32, FIRST_SLEEP_NS);
        loop {
            if !self.apply_messages(&mut st) {
                break;
            }
            let now = monotonic_ns();
            let mut got = 0;
            for i in 0..st.polled.len() {
                let p = st.polled[i];
                for q in 0..self.ports[p].rx_queues {
                    let n = eal::rx_burst(self.ports[p].id, q, &mut rx);
                    got += n;
                    for &m in &rx[..n] {
                        // SAFETY: the driver handed us these mbufs.
                        let m = unsafe { Mbuf::from_raw(m) };
                        self.on_frame(&mut st, now, p, m);
                    }
                }
            }
            let mut work = got > 0;
            if !st.resolver.is_idle() {
                work |= self.resolve(&mut st, now);
            }
            if now.saturating_sub(st.aged_ns) >= AGE_EVERY_NS {
                st.aged_ns = now;
                self.age_neighbours(&mut st, now);
            }
            if self.pipeline.flows() > 0 && self.pipeline.next_deadline().is_some_and(|d| d <= now)
            {
                self.originate(&mut st, now);
                work = true;
            }
            self.flush(&mut st);
            let end = monotonic_ns();
            if work {
                self.stats.busy_ns.add(end - now);
                self.stats.pipeline.store(self.pipeline.counters());
            }
            self.stats.uptime_ns.set(end - start);
            if got > 0 {
                empty = 0;
                sleep_ns = FIRST_SLEEP_NS;
            } else {
                empty = empty.saturating_add(1);
                if empty > SPINS {
                    let mut nap = sleep_ns;
                    if let Some(d) = self.pipeline.next_deadline() {
                        nap = nap.min(d.saturating_sub(end));
                    }
                    if nap > 0 {
                        std::thread::sleep(Duration::from_nanos(nap));
                    }
                    sleep_ns = (sleep_ns * 2).min(self.max_sleep_ns);
                }
            }
        }
        // Held packets go back to the pool before it is freed.
        drop(st);
    }

    /// Applies queued flow changes; false when told to stop.
    fn apply_messages(&mut self, st: &mut State) -> bool {
        while let Ok(m) = self.inbox.try_recv() {
            match m {
                Message::Put { flow, pipeline } => {
                    let old_slot = st.flows.get(&flow.local).and_then(|f| f.slot);
                    if let Some(s) = old_slot.filter(|s| Some(*s) != flow.slot) {
                        self.pipeline.remove(s);
                        st.slots.remove(&s);
                    }
                    if let (Some(slot), Some(p)) = (flow.slot, pipeline) {
                        self.pipeline.install(slot, p);
                        st.slots.insert(slot, flow.local);
                    }
                    st.flows.insert(flow.local, *flow);
                }
                Message::Remove { local } => {
                    if let Some(s) = st.flows.remove(&local).and_then(|f| f.slot) {
                        self.pipeline.remove(s);
                        st.slots.remove(&s);
                    }
                }
                Message::Stop => return false,
            }
            self.stats.flows.set(st.flows.len() as u64);
        }
        true
    }

    fn on_frame(&mut self, st: &mut State, now: u64, port: usize, mut m: Mbuf) {
        let c = &self.stats;
        c.rx.inc();
        if m.segments() != 1 {
            c.multi_segment.inc();
            return;
        }
        let len = m.len();
        c.rx_bytes.add(len as u64);
        let room = m.room();
        let class = relay::classify(&room[..len]);
        if let Ok(eth) = ethernet::Frame::new_checked(&room[..len]) {
            // Our own transmissions, as an af_packet port may see them.
            if eth.source() == self.ports[port].iface.mac {
                c.own.inc();
                return;
            }
        }
        match class {
            Class::Udp(u) => self.relay(st, now, m, u),
            Class::Neighbour => self.neighbour(st, now, port, m, len),
            Class::NotIp => c.not_ip.inc(),
            Class::NotUdp => c.not_udp.inc(),
            Class::Fragment => c.fragment.inc(),
            Class::Malformed => c.malformed.inc(),
        }
    }

    fn neighbour(&mut self, st: &mut State, now: u64, port: usize, mut m: Mbuf, len: usize) {
        let c = &self.stats;
        let ctx = &self.ports[port];
        let is_arp = m.room()[12..14] == arp::ETHERTYPE.to_be_bytes();
        let mut refresh = false;
        let learned = match neighbour::answer(&ctx.iface, m.room(), len) {
            Answer::Reply { len, learned } => {
                if is_arp {
                    c.arp_answered.inc();
                } else {
                    c.ndp_answered.inc();
                }
                if m.set_len(len) {
                    m.reset_tx();
                    st.tx[port].push(m.into_raw());
                }
                learned
            }
            Answer::Learned(ip, mac) => Some((ip, mac)),
            Answer::Refresh(ip, mac) => {
                c.announcements.inc();
                refresh = true;
                Some((ip, mac))
            }
            Answer::Ignored => {
                c.ignored.inc();
                None
            }
            Answer::Malformed => {
                c.neighbour_malformed.inc();
                None
            }
        };
        if let Some((ip, mac)) = learned {
            if let Some(t) = st.tables.get_mut(&port) {
                let changed = if refresh {
                    t.refresh(ip, mac, now)
                } else {
                    t.learn(ip, mac, now)
                };
                if changed {
                    c.learned.inc();
                    ctx.neighbours.store(Arc::new(t.clone()));
                }
            }
        }
    }

    fn relay(&mut self, st: &mut State, now: u64, mut m: Mbuf, u: relay::Udp) {
        let c = &self.stats;
        let Some(f) = st.flows.get_mut(&u.dst) else {
            c.no_flow.inc();
            return;
        };
        let s = &f.stats;
        let learned = s.learned.load().as_deref().copied();
        let a = relay::admit(&f.policy, learned, u.src);
        if a.learn {
            s.learned.store(Some(Arc::new(u.src)));
        }
        if !a.pass {
            s.dropped_source.inc();
            c.drop_source.inc();
            return;
        }
        s.packets.inc();
        s.bytes.add(u.payload_len as u64);
        s.last_seen_ns.set(now);
        {
            let at = u.payload_at();
            let payload = &m.room()[at..at + u.payload_len];
            s.measure(&mut f.tracker, f.follow.as_deref(), payload, now);
        }
        let (mut from, mut to) = (
            f.source,
            f.follow
                .as_ref()
                .and_then(|l| l.learned.load().as_deref().copied())
                .unwrap_or(f.destination),
        );
        let egress = f.egress;
        let mut new_len = None;
        if let Some(slot) = f.slot {
            let room = m.room();
            let mut p = Payload::new(&mut room[u.payload_at()..], u.payload_len);
            match self.pipeline.process(now, slot, &mut p) {
                Verdict::Forward => {}
                Verdict::ForwardRtcp => {
                    from.set_port(from.port().wrapping_add(1));
                    to.set_port(to.port().wrapping_add(1));
                }
                Verdict::Drop(_) => {
                    c.pipeline_drops.inc();
                    return;
                }
            }
            if p.modified() {
                new_len = Some(p.len());
            }
        }
        let end = relay::rewrite(m.room(), &u, from, to, new_len);
        if !m.set_len(end) {
            c.malformed.inc();
            return;
        }
        c.forwarded.inc();
        self.send(st, now, egress, to.ip(), m);
    }

    /// Sends a frame whose IP headers are written to `dst` out of `port`,
    /// filling in the MAC addresses, or holds it for its next hop.
    fn send(&self, st: &mut State, now: u64, port: usize, dst: IpAddr, mut m: Mbuf) {
        let c = &self.stats;
        let ctx = &self.ports[port];
        let Some(hop) = ctx.iface.next_hop(dst) else {
            c.no_route.inc();
            return;
        };
        match ctx.neighbours.load().get(hop) {
            Some(mac) => {
                let mut eth = ethernet::Frame::new_checked(&mut m.room()[..]).expect("a frame");
                eth.set_destination(mac);
                eth.set_source(ctx.iface.mac);
                m.reset_tx();
                st.tx_queued_bytes[port] += m.len() as u64;
                st.tx[port].push(m.into_raw());
            }
            None => match st.resolver.hold(now, port as u16, hop, m) {
                Hold::Held { ask } => {
                    c.held.inc();
                    if ask {
                        self.solicit(st, port, hop);
                    }
                }
                Hold::Full(_) => c.no_neighbour.inc(),
            },
        }
    }

    fn solicit(&self, st: &mut State, port: usize, hop: IpAddr) {
        let Some(mut m) = self.pool.alloc() else {
            self.stats.no_mbuf.inc();
            return;
        };
        let room = m.room();
        if room.len() < 128 {
            return;
        }
        if let Some(n) = neighbour::solicit(&self.ports[port].iface, hop, room) {
            if m.set_len(n) {
                self.stats.solicits.inc();
                st.tx[port].push(m.into_raw());
            }
        }
    }

    /// Asks again for neighbours not confirmed for a while; forgets those
    /// that never answered.
    fn age_neighbours(&self, st: &mut State, now: u64) {
        let mut probes = std::mem::take(&mut st.probes);
        for &p in &st.polled {
            let Some(t) = st.tables.get_mut(&p) else {
                continue;
            };
            if t.age(now, |ip| probes.push((p, ip))) {
                self.ports[p].neighbours.store(Arc::new(t.clone()));
            }
        }
        for (p, ip) in probes.drain(..) {
            self.solicit(st, p, ip);
        }
        st.probes = probes;
    }

    /// Packets waiting for next hops: send the resolved, ask again, give up.
    fn resolve(&self, st: &mut State, now: u64) -> bool {
        let mut steps = std::mem::take(&mut st.steps);
        let ports = &self.ports;
        st.resolver.poll(
            now,
            |port, hop| ports[port as usize].neighbours.load().get(hop),
            |s| steps.push(s),
        );
        let work = !steps.is_empty();
        for s in steps.drain(..) {
            match s {
                Step::Send {
                    port,
                    mac,
                    mut packet,
                } => {
                    let ctx = &ports[port as usize];
                    let mut eth =
                        ethernet::Frame::new_checked(&mut packet.room()[..]).expect("a frame");
                    eth.set_destination(mac);
                    eth.set_source(ctx.iface.mac);
                    packet.reset_tx();
                    st.tx[port as usize].push(packet.into_raw());
                }
                Step::Ask { port, hop } => self.solicit(st, port as usize, hop),
                Step::GiveUp(_) => self.stats.no_neighbour.inc(),
            }
        }
        st.steps = steps;
        work
    }

    /// Datagrams the flows' originating stages are due to send.
    fn originate(&mut self, st: &mut State, now: u64) {
        let mut scratch = std::mem::take(&mut st.scratch);
        let mut frames = std::mem::take(&mut st.frames);
        let (flows, slots, pool, stats) = (&st.flows, &st.slots, &self.pool, &self.stats);
        // The pipeline writes each datagram into `scratch`: it is framed
        // into an mbuf at once, before the next one overwrites it.
        self.pipeline.tick(now, &mut scratch, |slot, payload| {
            let Some(f) = slots.get(&slot).and_then(|l| flows.get(l)) else {
                return;
            };
            let to = f
                .follow
                .as_ref()
                .and_then(|l| l.learned.load().as_deref().copied())
                .unwrap_or(f.destination);
            let Some(mut m) = pool.alloc() else {
                stats.no_mbuf.inc();
                return;
            };
            match relay::build(m.room(), f.source, to, payload.bytes()) {
                Some(n) if m.set_len(n) => frames.push((m, f.egress, to.ip())),
                _ => stats.malformed.inc(),
            }
        });
        st.scratch = scratch;
        for (m, egress, to) in frames.drain(..) {
            self.send(st, now, egress, to, m);
        }
        st.frames = frames;
    }

    fn flush(&self, st: &mut State) {
        for (p, q) in st.tx.iter_mut().enumerate() {
            if q.is_empty() {
                continue;
            }
            let sent = eal::tx_burst(self.ports[p].id, self.index as u16, q);
            self.stats.tx.add(sent as u64);
            let mut unsent_bytes = 0;
            for &m in &q[sent..] {
                // SAFETY: the driver did not take these; they are still ours.
                let m = unsafe { Mbuf::from_raw(m) };
                unsent_bytes += m.len() as u64;
                drop(m);
                self.stats.tx_full.inc();
            }
            let queued = std::mem::take(&mut st.tx_queued_bytes[p]);
            self.stats.tx_bytes.add(queued.saturating_sub(unsent_bytes));
            q.clear();
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        for q in &mut self.tx {
            for &m in q.iter() {
                // SAFETY: queued, never sent: ours.
                drop(unsafe { Mbuf::from_raw(m) });
            }
            q.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// Ports of one address, the usual flow keys, spread over the low bits
    /// the table picks buckets with.
    #[test]
    fn addr_hasher_spreads_ports_of_one_address() {
        let b = BuildHasherDefault::<AddrHasher>::default();
        for base in ["10.0.1.1:30000", "[fd00::1]:30000"] {
            let a: SocketAddr = base.parse().unwrap();
            let buckets: std::collections::HashSet<u64> = (0..1024u16)
                .map(|i| {
                    let mut k = a;
                    k.set_port(30000 + 2 * i);
                    b.hash_one(k) & 1023
                })
                .collect();
            assert!(
                buckets.len() > 600,
                "{base}: {} buckets of 1024",
                buckets.len()
            );
        }
    }
}
