//! What only the DPDK backend does, between network namespaces: DPDK owns
//! the relay's veths through net_af_packet (no hugepages), and the kernel's
//! addresses are taken off them, so the relay's ARP replies and neighbour
//! advertisements can only come from DPDK, and DPDK resolves the peers
//! itself. The relay suite (relay.rs, `dpdk_*`: both ways over IPv4 and
//! IPv6 with the neighbours learned from DPDK, removal, latching, malformed
//! UDP, RTP quality) and the stage contract (pipeline.rs, `dpdk_*`) run on
//! DPDK too; here: two workers, neighbour discovery answered for the media
//! addresses only, off-link destinations through the gateway and the
//! no-route drop, and the worker report with an idle worker asleep.
//!
//! Needs a `tollgate` built with `--features dpdk` (libdpdk-dev) and root:
//! `cargo build -p tollgate --features dpdk && cargo test -p tollgate-tests
//! --features dpdk --test dpdk`.
#![cfg(feature = "dpdk")]

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;
use tollgate_dataplane::control::Request;
use tollgate_tests::capture::Capture;
use tollgate_tests::netns::{self, Topology};
use tollgate_tests::process::flow;
use tollgate_tests::relay::{neighbour_mac, round_trip, sa, Kind, OneWay, Relay, LIMIT, QUIET};
use tollgate_tests::rtp;

const DPDK: Kind = Kind::Dpdk { workers: 1 };

/// Two workers: each polls one port (both queues of it) and sends on its
/// own queue of the other, with the neighbours the other worker learned;
/// the relay suite's round trip, and every worker carried its share.
#[test]
fn dpdk_two_workers_relay_both_ways() {
    round_trip(
        &Relay::new(Kind::Dpdk { workers: 2 }, "cores = [0, 1]"),
        netns::v4(),
    );
}

/// ARP requests and neighbour solicitations are answered for the ports'
/// addresses, and not for other addresses on the same prefixes.
#[test]
fn dpdk_answers_arp_and_ndp_for_its_addresses_only() {
    let r = Relay::new(DPDK, "");
    let t = &r.topo;
    let ra_mac = Topology::mac(&t.relay, "ra");
    for (ours, other, from) in [
        ("10.201.1.1", "10.201.1.77", "10.201.1.2:5100"),
        ("fd00:201:1::1", "fd00:201:1::77", "[fd00:201:1::2]:5100"),
    ] {
        let sock = rtp::bind(&t.caller, from.parse().unwrap());
        for target in [ours, other] {
            // Any datagram makes the caller's kernel ask for the target.
            let to = SocketAddr::new(target.parse().unwrap(), 9);
            let _ = sock.send_to(b"who", to);
        }
        assert_eq!(
            neighbour_mac(&t.caller, "ca", ours.parse().unwrap()),
            Some(ra_mac),
            "{ours} is answered with ra's MAC"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            neighbour_mac_now(&t.caller, "ca", other.parse().unwrap()),
            None,
            "{other} is not ours and must stay unresolved"
        );
    }
    assert!(
        r.dp.counter("arp_requests_answered") >= 1,
        "{}",
        r.counters()
    );
    assert!(
        r.dp.counter("neighbour_solicitations_answered") >= 1,
        "{}",
        r.counters()
    );
    // The caller's requests for the stranger: an ARP request for someone
    // else only refreshes the sender; a solicitation for someone else is ignored.
    assert!(
        r.dp.counter("neighbour_announcements") >= 1,
        "{}",
        r.counters()
    );
    assert!(r.dp.counter("neighbour_ignored") >= 1, "{}", r.counters());
}

fn neighbour_mac_now(ns: &str, ifname: &str, addr: IpAddr) -> Option<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "neigh", "show", &addr.to_string(), "dev", ifname])
        .output()
        .expect("ip neigh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("lladdr ")
        .nth(1)
        .map(|s| s.split_whitespace().next().unwrap_or_default().to_string())
}

/// CPU time (user + system, in clock ticks) of `pid`'s threads named `tg-dpdk-*`.
fn worker_cpu_ticks(pid: u32) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc task list")
        .flatten()
    {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        if !comm.contains("(tg-dpdk-") {
            continue;
        }
        // After the command: state, then fields 4.. of proc(5); utime and
        // stime are fields 14 and 15.
        let f: Vec<&str> = rest.split_whitespace().collect();
        total += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    }
    total
}

/// Workers report rx, tx and busy time through the `workers` request, and
/// an idle worker sleeps instead of spinning: over a quiet second it uses
/// well under half a core.
#[test]
fn dpdk_worker_report_and_idle_sleep() {
    let OneWay { r, local, tx, rx } = OneWay::new(DPDK, "");
    rtp::send(&tx, local, 1, 0..50, Duration::from_micros(200));
    assert_eq!(rtp::collect(&rx, 50, QUIET, LIMIT).len(), 50);
    let w = r.dp.request(Request::Workers).expect("workers");
    let w0 = &w[0];
    assert!(w0["rx_packets"].as_u64() >= Some(50), "{w}");
    assert!(w0["tx_packets"].as_u64() >= Some(50), "{w}");
    assert!(w0["busy_ns"].as_u64() > Some(0), "{w}");
    assert!(w0["uptime_ns"].as_u64() > w0["busy_ns"].as_u64(), "{w}");

    let pid = r.dp.pid().expect("running");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let before = worker_cpu_ticks(pid);
    let t0 = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let used = (worker_cpu_ticks(pid) - before) as f64 / hz as f64;
    let share = used / t0.elapsed().as_secs_f64();
    assert!(
        share < 0.5,
        "an idle DPDK worker used {:.0}% of a core",
        share * 100.0
    );
}

/// A destination off the port's prefixes goes to the port's gateway (the
/// callee's host here: the capture sees frames for 192.0.2.10 sent to its
/// MAC); one with no gateway on its port is dropped, counted.
#[test]
fn dpdk_routes_off_link_destinations_through_the_gateway() {
    let r = Relay::new(DPDK, "");
    let a = netns::v4();
    r.dp.put(flow(
        "10.201.1.1:30000",
        "10.201.2.1:30002",
        "192.0.2.10:4000",
    ));
    r.dp.put(flow(
        "10.201.2.1:30004",
        "10.201.1.1:30006",
        "198.51.100.1:4000",
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let back = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let cap = Capture::open(&r.topo.callee, "eb");
    rtp::send(
        &tx,
        sa(a.relay_a, 30000),
        4,
        0..20,
        Duration::from_micros(300),
    );
    let off_link: SocketAddr = "192.0.2.10:4000".parse().unwrap();
    let frames = cap.udp_to(off_link, 20, LIMIT);
    assert_eq!(frames.len(), 20, "{}", r.counters());
    let gw_mac = Topology::mac(&r.topo.callee, "eb");
    assert!(frames
        .iter()
        .all(|f| f.dst_mac == gw_mac && f.udp_checksum_ok));

    rtp::send(&back, sa(a.relay_b, 30004), 5, 0..7, Duration::ZERO);
    assert!(
        tollgate_tests::wait_until(Duration::from_secs(2), || r.dp.counter("drop_no_route")
            == 7),
        "no gateway on ra: {}",
        r.counters()
    );
}
