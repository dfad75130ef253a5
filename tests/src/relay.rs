//! The relay fixture of the namespace suites (tests/relay.rs, pipeline.rs,
//! afxdp.rs, dpdk.rs): a fresh topology with `tollgate dataplane` on one
//! backend in its relay namespace, the ends of a one-way flow, and the
//! round trip every backend must pass, with what each backend adds to it.

use crate::capture::Capture;
use crate::netns::{Addrs, Topology};
use crate::process::{flow, Backend, Bpffs, Dataplane};
use crate::rtp;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;
use tollgate_dataplane::control::Request;
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::StageSpec;

/// How long a receiver waits for the next packet before it gives up.
pub const QUIET: Duration = Duration::from_millis(1500);
/// How long a receiver waits in all.
pub const LIMIT: Duration = Duration::from_secs(20);

/// The backends the suites run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Socket,
    /// XDP, flows on its fast path.
    Xdp,
    /// XDP with a `null` stage on every flow [`Relay::put`] installs, so
    /// packets go through the AF_XDP pipeline workers.
    Afxdp,
    /// DPDK over net_af_packet on veths the kernel gave up, with `workers`
    /// workers (the extra config sets as many cores).
    Dpdk {
        workers: usize,
    },
}

impl Kind {
    fn backend(self) -> Backend {
        match self {
            Kind::Socket => Backend::Socket,
            Kind::Xdp | Kind::Afxdp => Backend::Xdp,
            Kind::Dpdk { workers } => Backend::Dpdk { workers },
        }
    }

    /// The data plane counter of packets for no flow, and how long it may
    /// take to show them (DPDK workers publish their counters periodically).
    pub fn no_flow_counter(self) -> Option<(&'static str, Duration)> {
        match self {
            Kind::Socket => None,
            Kind::Xdp | Kind::Afxdp => Some(("pass_no_flow", Duration::ZERO)),
            Kind::Dpdk { .. } => Some(("drop_no_flow", Duration::from_secs(2))),
        }
    }

    /// The data plane counter of malformed UDP (the socket backend never
    /// sees it: the kernel drops it).
    pub fn malformed_counter(self) -> Option<&'static str> {
        match self {
            Kind::Socket => None,
            Kind::Xdp | Kind::Afxdp => Some("pass_malformed"),
            Kind::Dpdk { .. } => Some("drop_malformed"),
        }
    }
}

pub fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

pub struct Relay {
    // Drop order: data plane, then bpffs, then namespaces.
    pub dp: Dataplane,
    _bpf: Option<Bpffs>,
    pub topo: Topology,
    pub kind: Kind,
}

impl Relay {
    /// A relay on `kind` whose config has `extra` after the `[dataplane]` keys.
    pub fn new(kind: Kind, extra: &str) -> Relay {
        crate::require_root();
        Relay::on(Topology::new(), kind, extra)
    }

    /// [`Relay::new`] on `topo`, which the test may have shaped first.
    /// DPDK: the relay's veths are given away first (no kernel address on
    /// them, end hosts that forgot the relay's MACs). AF_XDP and DPDK:
    /// refused unless the workers (ports) started.
    pub fn on(topo: Topology, kind: Kind, extra: &str) -> Relay {
        crate::require_root();
        if matches!(kind, Kind::Dpdk { .. }) {
            topo.give_relay_links_away();
        }
        let bpf = matches!(kind, Kind::Xdp | Kind::Afxdp).then(Bpffs::new);
        let dp = Dataplane::start(Some(&topo.relay), kind.backend(), bpf.as_ref(), extra);
        let r = Relay {
            dp,
            _bpf: bpf,
            topo,
            kind,
        };
        match kind {
            Kind::Afxdp => {
                let workers = r.workers();
                assert!(
                    workers.as_array().is_some_and(|w| !w.is_empty()),
                    "AF_XDP workers run: {workers}\n{}",
                    r.dp.log_text()
                );
            }
            Kind::Dpdk { .. } => {
                let log = r.dp.log_text();
                assert!(
                    log.contains("DPDK port started"),
                    "the data plane did not start DPDK (is `tollgate` built with --features dpdk?):\n{log}"
                );
            }
            Kind::Socket | Kind::Xdp => {}
        }
        r
    }

    /// Installs the relay flow `f`; on [`Kind::Afxdp`] with a `null` stage
    /// unless it has stages. ([`Dataplane::put`] installs a flow as it is.)
    pub fn put(&self, mut f: Flow) {
        if self.kind == Kind::Afxdp && f.stages.is_empty() {
            f.stages = vec![StageSpec::Null];
        }
        self.dp.put(f);
    }

    pub fn workers(&self) -> Value {
        self.dp.request(Request::Workers).expect("workers")
    }

    /// A pipeline counter summed over workers.
    pub fn pipeline(&self, name: &str) -> u64 {
        self.workers()
            .as_array()
            .expect("a list")
            .iter()
            .map(|w| w["pipeline"][name].as_u64().expect(name))
            .sum()
    }

    /// All counters, for failure messages.
    pub fn counters(&self) -> String {
        self.dp
            .request(Request::Counters)
            .map(|c| c.to_string())
            .unwrap_or_default()
    }

    /// The events reported since the last call.
    pub fn events(&self) -> Vec<Value> {
        let v = self.dp.request(Request::Events).expect("events");
        v.as_array().cloned().unwrap_or_default()
    }
}

/// A relay with one flow, caller 10.201.1.2:5000 -> relay 10.201.1.1:30000
/// -> (from 10.201.2.1:30002) -> callee 10.201.2.2:4000, and both end sockets.
pub struct OneWay {
    pub r: Relay,
    pub local: SocketAddr,
    pub tx: UdpSocket,
    pub rx: UdpSocket,
}

impl OneWay {
    pub fn new(kind: Kind, extra: &str) -> OneWay {
        let r = Relay::new(kind, extra);
        let a = crate::netns::v4();
        r.put(flow(
            "10.201.1.1:30000",
            "10.201.2.1:30002",
            "10.201.2.2:4000",
        ));
        let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
        let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
        OneWay {
            r,
            local: sa(a.relay_a, 30000),
            tx,
            rx,
        }
    }

    /// Streams `n` packets (SSRC 3) at 1 ms through the flow; once `after`
    /// of them went through (else fails with `why`, within 5 s), restarts
    /// the data plane with `restart`; returns what the callee received.
    pub fn restart_under_stream(
        &mut self,
        n: u16,
        after: u64,
        why: &str,
        restart: impl FnOnce(&mut Dataplane),
    ) -> Vec<(Vec<u8>, SocketAddr)> {
        let tx = self.tx.try_clone().expect("clone the sender");
        let local = self.local;
        let sender =
            std::thread::spawn(move || rtp::send(&tx, local, 3, 0..n, Duration::from_millis(1)));
        let flowing = crate::wait_until(Duration::from_secs(5), || {
            self.r.dp.flow(local)["counters"]["packets"].as_u64() >= Some(after)
        });
        assert!(flowing, "{why}");
        restart(&mut self.r.dp);
        let got = rtp::collect(&self.rx, n as usize, QUIET, Duration::from_secs(30));
        sender.join().expect("sender");
        got
    }
}

/// A flow whose peer sits behind the interface the packets came in on (two
/// endpoints on the caller's side): caller 5000 -> 10.201.1.1:30010 ->
/// (from 30012) -> caller 6000. All 50 packets sent arrive, from 30012;
/// the backend's counters say how.
pub fn hairpin(r: &Relay) {
    let a = crate::netns::v4();
    r.put(flow(
        "10.201.1.1:30010",
        "10.201.1.1:30012",
        "10.201.1.2:6000",
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.caller, sa(a.caller, 6000));
    rtp::send(
        &tx,
        sa(a.relay_a, 30010),
        5,
        0..50,
        Duration::from_micros(200),
    );
    let got = rtp::collect(&rx, 50, QUIET, LIMIT);
    assert_eq!(got.len(), 50, "counters {}", r.counters());
    assert!(got.iter().all(|(_, s)| *s == sa(a.relay_a, 30012)));
}

/// Sends `n` UDP datagrams caller 5000 -> 10.201.1.1:30000 from a raw socket
/// in `ns`, each with a UDP length (200) that disagrees with the IP packet's.
pub fn send_malformed_udp(ns: &str, n: usize) {
    let raw = Topology::run_in(ns, || {
        // SAFETY: a raw UDP socket; the kernel adds the IP header.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        fd
    });
    let mut pkt = vec![0x13, 0x88, 0x75, 0x30, 0x00, 0xc8, 0x00, 0x00]; // 5000 -> 30000, length 200
    pkt.extend_from_slice(&rtp::packet(1, 0)[..20]);
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    to.sin_family = libc::AF_INET as u16;
    to.sin_addr.s_addr = u32::from_ne_bytes([10, 201, 1, 1]);
    for _ in 0..n {
        // SAFETY: sending a buffer we own to a valid sockaddr_in.
        let sent = unsafe {
            libc::sendto(
                raw,
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                16,
            )
        };
        assert_eq!(
            sent,
            pkt.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: closing the raw socket we opened.
    unsafe { libc::close(raw) };
}

/// The MAC `ns` has for `addr` on `ifname`, once it has one (at most 3 s).
pub fn neighbour_mac(ns: &str, ifname: &str, addr: IpAddr) -> Option<[u8; 6]> {
    let mut mac = None;
    crate::wait_until(Duration::from_secs(3), || {
        let out = Command::new("ip")
            .args(["-n", ns, "neigh", "show", &addr.to_string(), "dev", ifname])
            .output()
            .expect("ip neigh");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        mac = text.split("lladdr ").nth(1).and_then(|s| {
            let m: Vec<u8> = s
                .split_whitespace()
                .next()?
                .split(':')
                .map(|h| u8::from_str_radix(h, 16).ok())
                .collect::<Option<_>>()?;
            m.try_into().ok()
        });
        mac.is_some()
    });
    mac
}

/// Caller -> relay -> callee and back over `r` (with the addresses `a`),
/// checking every packet and the wire, then what `r`'s backend adds:
/// AF_XDP, that every packet went through a worker; DPDK, that the end
/// hosts learned the relay's MACs from DPDK and every worker polled.
pub fn round_trip(r: &Relay, a: Addrs) {
    let (t, dp) = (&r.topo, &r.dp);
    let (a_local, b_local) = (sa(a.relay_a, 30000), sa(a.relay_b, 30002));
    let (caller, callee) = (sa(a.caller, 5000), sa(a.callee, 4000));
    r.put(flow(
        &a_local.to_string(),
        &b_local.to_string(),
        &callee.to_string(),
    ));
    r.put(flow(
        &b_local.to_string(),
        &a_local.to_string(),
        &caller.to_string(),
    ));
    let caller_sock = rtp::bind(&t.caller, caller);
    let callee_sock = rtp::bind(&t.callee, callee);
    let n = 300u16;
    for (from_sock, to_sock, to_ns, to_if, relay_if, local, relay_src, dest) in [
        (
            &caller_sock,
            &callee_sock,
            &t.callee,
            "eb",
            "rb",
            a_local,
            b_local,
            callee,
        ),
        (
            &callee_sock,
            &caller_sock,
            &t.caller,
            "ca",
            "ra",
            b_local,
            a_local,
            caller,
        ),
    ] {
        let cap = Capture::open(to_ns, to_if);
        rtp::send(from_sock, local, 0x1000, 0..n, Duration::from_micros(300));
        let got = rtp::collect(to_sock, n as usize, QUIET, LIMIT);
        let seqs: BTreeSet<u16> = rtp::seqs(&got).into_iter().collect();
        assert_eq!(
            (got.len(), seqs.len()),
            (n as usize, n as usize),
            "-> {to_if}: {} of {n} arrived, {} distinct; counters {}; workers {}",
            got.len(),
            seqs.len(),
            r.counters(),
            dp.request(Request::Workers)
                .map(|w| w.to_string())
                .unwrap_or_default()
        );
        assert!(
            got.iter().all(|(_, src)| *src == relay_src),
            "packets must come from the relay's {relay_src}"
        );
        assert!(
            got.iter()
                .all(|(p, _)| *p == rtp::packet(0x1000, u16::from_be_bytes([p[2], p[3]]))),
            "payload changed"
        );
        let frames = cap.udp_to(dest, n as usize, LIMIT);
        assert_eq!(
            frames.len(),
            n as usize,
            "capture on {to_if} saw {} frames",
            frames.len()
        );
        let (relay_mac, peer_mac) = (
            Topology::mac(&t.relay, relay_if),
            Topology::mac(to_ns, to_if),
        );
        for f in &frames {
            assert_eq!(f.from, relay_src, "rewritten source");
            assert!(f.ip_checksum_ok, "IP header checksum invalid: {f:?}");
            assert!(
                f.udp_checksum_ok && f.udp_checksum != 0,
                "UDP checksum invalid or absent: {f:?}"
            );
            assert_eq!((f.src_mac, f.dst_mac), (relay_mac, peer_mac), "MAC rewrite");
        }
    }
    for local in [a_local, b_local] {
        let c = &dp.flow(local)["counters"];
        assert_eq!(c["packets"], n as u64, "flow {local} counters: {c}");
        assert_eq!(c["bytes"], n as u64 * 172, "flow {local} counters: {c}");
    }
    let total = 2 * n as u64;
    match r.kind {
        Kind::Socket | Kind::Xdp => {}
        Kind::Afxdp => {
            // Every packet went through a worker, none past it.
            assert_eq!(dp.counter("to_worker"), total, "{}", r.counters());
            assert_eq!(dp.counter("forwarded"), 0, "none by the fast path");
            assert_eq!(dp.counter("worker_rx"), total);
            assert_eq!(dp.counter("worker_tx"), total);
            assert_eq!(dp.counter("worker_tx_copied"), total, "ra <-> rb: copies");
            assert_eq!(r.pipeline("processed"), total);
            assert_eq!(r.pipeline("forwarded"), total);
            let w = r.workers();
            assert_eq!(w[0]["flows"], 2, "{w}");
            assert!(w[0]["busy_ns"].as_u64() > Some(0), "{w}");
        }
        Kind::Dpdk { workers } => {
            // Only DPDK could have told the end hosts the relay's MACs, and
            // the relay learned theirs by asking.
            for (ns, ifname, addr, relay_if) in [
                (&t.caller, "ca", a.relay_a, "ra"),
                (&t.callee, "eb", a.relay_b, "rb"),
            ] {
                assert_eq!(
                    neighbour_mac(ns, ifname, addr),
                    Some(Topology::mac(&t.relay, relay_if)),
                    "{ns} resolved {addr}"
                );
            }
            let answered = if a.caller.is_ipv4() {
                "arp_requests_answered"
            } else {
                "neighbour_solicitations_answered"
            };
            // The callee learns the relay from the relay's own request (the
            // kernel records the sender of a request for itself), so one
            // answer suffices.
            assert!(dp.counter(answered) >= 1, "{}", r.counters());
            assert!(
                dp.counter("neighbour_requests_sent") >= 1,
                "{}",
                r.counters()
            );
            assert_eq!(dp.counter("port_ra_neighbours"), 1, "{}", r.counters());
            assert_eq!(dp.counter("forwarded"), total);
            let report = r.workers();
            let busy: Vec<u64> = (0..workers)
                .map(|w| report[w]["rx_packets"].as_u64().unwrap_or(0))
                .collect();
            assert!(
                busy.iter().all(|&rx| rx >= n as u64),
                "every worker polls its port: {report}"
            );
            assert_eq!(dp.counter("drop_no_neighbour"), 0);
        }
    }
}
