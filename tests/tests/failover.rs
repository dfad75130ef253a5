//! Failover between two nodes through Redis (issue 18): nodes A and B
//! (`tollgate run`, socket backend) each in a network namespace of their
//! own on one LAN (a bridge) with the caller and the callee. The calls'
//! relay and SIP address is an IP alias, 10.209.0.100, on A. A carries NG
//! calls with RTP (each call's packets counted by sequence number at the
//! callee) and B2BUA calls from SIPp (G.711 from a pcap, echoed by the
//! UAS), and writes them to its keyspace in a real Redis. A is SIGKILLed
//! with its data plane, the alias moves to B with `ip addr` (the
//! neighbours' ARP caches flushed, which keepalived's gratuitous ARP does
//! for real) and `tollgate ctl takeover` on B takes A's keyspace. Then:
//! every packet sent before the kill and after the takeover reached the
//! callee (what is lost falls in the window between, printed), the NG
//! calls are deleted on B and SIPp's BYEs are answered by B, each call has
//! exactly one CDR, all of them B's, and A started again finds its
//! keyspace taken over and restores none of its journaled calls.
//!
//! Redis runs in the root namespace (scripts/data/start-redis.sh); each
//! node reaches it on its own loopback through a TCP relay the test runs.
//!
//! Ports: SIP 59000-59030, relay 59100-59899, NG 22580 (on each node's
//! loopback). Namespaces `tgf*`.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_ng::Value as Ng;
use tollgate_tests::netns::{self, sh, Topology};
use tollgate_tests::peers::{self, Proc};
use tollgate_tests::process::tollgate_bin;
use tollgate_tests::services::{self, Service};
use tollgate_tests::{wait_until, TempDir};

const VIP: &str = "10.209.0.100";
const CALLER: &str = "10.209.0.2";
const CALLEE: &str = "10.209.0.3";
const NG: &str = "127.0.0.1:22580";
const NG_CALLS: u32 = 20;
const SIP_CALLS: u32 = 10;
/// RTP of each NG call: 50 packets a second for 10 s.
const PACKETS: u16 = 500;
const EVERY: Duration = Duration::from_millis(20);
/// Packets sent just before the kill that A may not have relayed yet.
const IN_FLIGHT: u16 = 5;

/// The LAN: a bridge in a namespace of its own, and the caller, the
/// callee and the two nodes each on a veth to it.
struct Lan {
    bridge: String,
    caller: String,
    callee: String,
    a: String,
    b: String,
}

impl Lan {
    fn new() -> Lan {
        let base = netns::unique("tgf");
        let lan = Lan {
            bridge: format!("{base}l"),
            caller: format!("{base}c"),
            callee: format!("{base}e"),
            a: format!("{base}a"),
            b: format!("{base}b"),
        };
        sh(&["ip", "netns", "add", &lan.bridge]);
        ip(&lan.bridge, "link add br0 type bridge");
        ip(&lan.bridge, "link set br0 up");
        let hosts = [
            (&lan.caller, "vc", CALLER),
            (&lan.callee, "ve", CALLEE),
            (&lan.a, "va", "10.209.0.11"),
            (&lan.b, "vb", "10.209.0.12"),
        ];
        for (ns, port, addr) in hosts {
            sh(&["ip", "netns", "add", ns]);
            ip(ns, "link set lo up");
            ip(
                &lan.bridge,
                &format!("link add {port} type veth peer name eth0 netns {ns}"),
            );
            ip(&lan.bridge, &format!("link set {port} master br0 up"));
            ip(ns, &format!("addr add {addr}/24 dev eth0"));
            ip(ns, "link set eth0 up");
            // A node binds the floating address while it is elsewhere (as
            // a keepalived standby must).
            let mut sysctl = vec!["ip", "netns", "exec", ns];
            sysctl.extend(["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"]);
            sh(&sysctl);
        }
        ip(&lan.a, &format!("addr add {VIP}/24 dev eth0"));
        lan
    }

    /// Moves the floating address from `from` to `to`, as keepalived does
    /// when `to` becomes master.
    fn move_vip(&self, from: &str, to: &str) {
        ip(from, &format!("addr del {VIP}/24 dev eth0"));
        ip(to, &format!("addr add {VIP}/24 dev eth0"));
        for ns in [&self.caller, &self.callee] {
            ip(ns, "neigh flush dev eth0");
        }
    }
}

/// `ip -n NS ARGS...`, which must succeed.
fn ip(ns: &str, args: &str) {
    let mut all = vec!["ip", "-n", ns];
    all.extend(args.split_whitespace());
    sh(&all);
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in [&self.caller, &self.callee, &self.a, &self.b, &self.bridge] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A TCP relay from `at` inside a namespace to `at` in this one (where
/// Redis runs), for the next 3 minutes; switched off, it cuts its
/// connections and refuses new ones (a Redis outage, as the node sees it).
struct RedisRelay {
    on: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl RedisRelay {
    fn start(ns: &str, at: SocketAddr) -> RedisRelay {
        let listener = Topology::run_in(ns, move || TcpListener::bind(at)).expect("relay listener");
        listener.set_nonblocking(true).expect("nonblocking");
        let relay = RedisRelay {
            on: Arc::new(AtomicBool::new(true)),
            open: Arc::default(),
        };
        let (on, open) = (relay.on.clone(), relay.open.clone());
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(180);
            while Instant::now() < end {
                let Ok((inside, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let Some(redis) = on
                    .load(Ordering::SeqCst)
                    .then(|| TcpStream::connect(at).ok())
                    .flatten()
                else {
                    continue;
                };
                let _ = inside.set_nonblocking(false);
                let mut open = open.lock().expect("relay");
                open.extend([&inside, &redis].map(|s| s.try_clone().expect("clone")));
                for (from, to) in [
                    (
                        inside.try_clone().expect("clone"),
                        redis.try_clone().expect("clone"),
                    ),
                    (redis, inside),
                ] {
                    std::thread::spawn(move || pipe(from, to));
                }
            }
        });
        relay
    }

    fn switch(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
        if !on {
            for s in self.open.lock().expect("relay").drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Copies `from` to `to` until either closes.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A node's config: relay and SIP on the floating address, its CDRs to
/// `cdr.jsonl` in `dir`, its calls in Redis under `keyspace`.
fn node_config(dir: &Path, redis: &str, keyspace: &str, takeover: &str) -> String {
    format!(
        "[dataplane]\nbackend = \"socket\"\ncontrol_socket = \"{d}/dp.sock\"\n\
         [media]\ninterfaces = [{{ name = \"pub\", address = \"{VIP}\" }}]\n\
         port_min = 59100\nport_max = 59899\ndelete_delay_secs = 0\n\
         [ng]\nlisten = \"{NG}\"\n\
         [sip]\nlisten = \"{VIP}:59000\"\n[[sip.routes]]\nmatch = \"6000\"\n\
         target = \"sip:6000@{CALLEE}:59010\"\n\
         [cdr]\nspool_dir = \"{d}/spool\"\nsinks = [{{ kind = \"jsonl\", path = \"{d}/cdr.jsonl\" }}]\n\
         [failover]\nurl = \"{redis}\"\nkeyspace = \"{keyspace}\"\ntakeover = [\"{takeover}\"]\n",
        d = dir.display(),
    )
}

fn cdr_ids(dir: &Path) -> Vec<String> {
    tollgate_tests::cdrs::jsonl(&dir.join("cdr.jsonl"))
        .iter()
        .filter_map(|c| c["call_id"].as_str().map(str::to_string))
        .collect()
}

/// A datagram of NG call `i`, packet `seq`: the payload names the call.
fn tagged(i: u32, seq: u16) -> Vec<u8> {
    let mut p = tollgate_tests::rtp::packet(0x2000 + i, seq);
    p[12..16].copy_from_slice(&i.to_be_bytes());
    p
}

/// The sequence numbers `sock` receives per call, for at most `limit`.
fn receive_per_call(
    sock: UdpSocket,
    limit: Duration,
) -> std::thread::JoinHandle<Vec<BTreeSet<u16>>> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut per = vec![BTreeSet::new(); NG_CALLS as usize];
        let (end, mut buf) = (Instant::now() + limit, [0u8; 2048]);
        let full = |per: &[BTreeSet<u16>]| per.iter().all(|s| s.len() == PACKETS as usize);
        while Instant::now() < end && !full(&per) {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            if n < 16 {
                continue;
            }
            let i = u32::from_be_bytes(buf[12..16].try_into().expect("4 bytes"));
            if let Some(s) = per.get_mut(i as usize) {
                s.insert(u16::from_be_bytes([buf[2], buf[3]]));
            }
        }
        per
    })
}

/// Offers and answers `n` NG calls (`{prefix}-{i}`) on the node in `ns`;
/// their relay addresses (on the caller's side).
fn ng_calls(ns: &str, prefix: &str, n: u32, a_at: SocketAddr, b_at: SocketAddr) -> Vec<SocketAddr> {
    let mut client = peers::ng_client(Some(ns), NG.parse().expect("NG"));
    (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            let call = |extra: Vec<(&'static str, Ng)>| {
                let mut p = vec![("call-id", Ng::str(&id)), ("from-tag", Ng::str("A"))];
                p.extend(extra);
                p
            };
            let offer = vec![("sdp", Ng::str(&peers::pcmu_sdp(a_at)))];
            client.command("offer", call(offer)).expect("offer");
            let answer = vec![
                ("sdp", Ng::str(&peers::pcmu_sdp(b_at))),
                ("to-tag", Ng::str("B")),
            ];
            peers::relay_media(&client.command("answer", call(answer)).expect("answer"))
        })
        .collect()
}

/// Deletes NG calls `{prefix}-{i}` for each `i` of `calls` on the node in `ns`.
fn ng_delete(ns: &str, prefix: &str, calls: std::ops::Range<u32>) {
    let mut client = peers::ng_client(Some(ns), NG.parse().expect("NG"));
    for i in calls {
        let del = vec![
            ("call-id", Ng::str(&format!("{prefix}-{i}"))),
            ("from-tag", Ng::str("A")),
        ];
        client.command("delete", del).expect("delete");
    }
}

/// The test Redis: its URL, its address, and a connection to it.
fn redis() -> (String, SocketAddr, redis::Connection) {
    let url = services::url(Service::Redis);
    let at: SocketAddr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("a Redis address");
    let conn = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .expect("Redis");
    (url, at, conn)
}

/// Removes what the test's keyspaces left in Redis.
fn forget(redis: &mut redis::Connection, keyspaces: &[&String]) {
    for k in keyspaces {
        for part in ["calls", "owner", "taken"] {
            let _: Result<(), _> = redis::cmd("DEL")
                .arg(format!("tollgate:keyspace:{k}:{part}"))
                .query(redis);
        }
    }
}

/// SIPp's `uac_pcap` for every B2BUA call, from the caller to the
/// floating address (about 10 s of G.711 and DTMF per call, then BYE).
fn sipp_calls(ns: &str, dir: &Path) -> Proc {
    let pcap = dir.join("pcap");
    std::os::unix::fs::symlink("/usr/share/sip-tester", &pcap).expect("pcap link");
    let n = SIP_CALLS.to_string();
    let mut uac = peers::sipp_bounded(Some(ns), 60, &format!("{VIP}:59000"));
    uac.args(["-sn", "uac_pcap", "-s", "6000", "-i", CALLER, "-p", "59001"])
        .args(["-bind_local", "-nostdin", "-mi", CALLER, "-mp", "59030"])
        .args(["-m", &n, "-l", &n, "-r", "20", "-timeout", "50s"])
        .args(["-trace_err", "-error_file"])
        .arg(dir.join("uac_errors.log"));
    peers::spawn(uac, dir, "sipp-uac")
}

/// The value of metric `name` on the `/metrics` of `node`, in `ns`.
fn metric(ns: &str, node: &Proc, name: &str) -> Option<f64> {
    let url = format!("http://{}/metrics", peers::http_address(node)?);
    let text = Topology::run_in(ns, move || {
        ureq::get(&url)
            .timeout(Duration::from_secs(2))
            .call()
            .ok()?
            .into_string()
            .ok()
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// POSTs JSON `body` to `path` on `node`'s HTTP API, in `ns`: the status
/// and the body of the answer.
fn post(ns: &str, node: &Proc, path: &str, body: String) -> (u16, serde_json::Value) {
    let url = format!(
        "http://{}{path}",
        peers::http_address(node).expect("HTTP address")
    );
    Topology::run_in(ns, move || {
        let r = match ureq::post(&url)
            .timeout(Duration::from_secs(15))
            .set("Content-Type", "application/json")
            .send_string(&body)
        {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("POST {url}: {e}"),
        };
        let status = r.status();
        (
            status,
            serde_json::from_str(&r.into_string().unwrap_or_default()).unwrap_or_default(),
        )
    })
}

/// The fields of keyspace `k`'s calls in Redis.
fn stored(redis: &mut redis::Connection, k: &str) -> Vec<String> {
    redis::cmd("HKEYS")
        .arg(format!("tollgate:keyspace:{k}:calls"))
        .query(redis)
        .unwrap_or_default()
}

#[test]
fn node_a_killed_node_b_takes_its_calls_and_media_and_each_cdr_is_written_once() {
    tollgate_tests::require_root();
    peers::require("sipp");
    let (url, redis_at, mut redis) = redis();
    let lan = Lan::new();
    let dir = TempDir::new("tg-failover");
    let (da, db) = (dir.0.join("a"), dir.0.join("b"));
    let (ka, kb) = (netns::unique("tgfa"), netns::unique("tgfb"));
    let mut relays = Vec::new();
    for (ns, d) in [(&lan.a, &da), (&lan.b, &db)] {
        std::fs::create_dir_all(d).expect("node dir");
        relays.push(RedisRelay::start(ns, redis_at));
    }
    let ng_at: SocketAddr = NG.parse().expect("NG");
    let config_a = node_config(&da, &url, &ka, &kb);
    let config_b = node_config(&db, &url, &kb, &ka);
    let start =
        |ns: &str, d: &Path, config: &str| peers::tollgate_run(Some(ns), d, config, &[], ng_at);
    let mut node_a = start(&lan.a, &da, &config_a);
    let node_b = start(&lan.b, &db, &config_b);

    // NG calls on A, with RTP from the caller counted at the callee.
    let (a_at, b_at): (SocketAddr, SocketAddr) = (
        format!("{CALLER}:49000").parse().expect("address"),
        format!("{CALLEE}:49010").parse().expect("address"),
    );
    let to_relay = ng_calls(&lan.a, "failover-ng", NG_CALLS, a_at, b_at);
    let caller = tollgate_tests::rtp::bind(&lan.caller, a_at);
    let callee = tollgate_tests::rtp::bind(&lan.callee, b_at);
    let receiver = receive_per_call(callee, Duration::from_secs(30));
    let sent = Arc::new(AtomicU16::new(0));
    let sender = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            for seq in 0..PACKETS {
                for (i, at) in to_relay.iter().enumerate() {
                    let _ = caller.send_to(&tagged(i as u32, seq), at);
                }
                sent.store(seq + 1, Ordering::SeqCst);
                let due = t0 + EVERY * u32::from(seq + 1);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        })
    };
    // B2BUA calls through SIPp.
    let _uas = peers::sipp_uas_with(
        Some(&lan.callee),
        &dir.0,
        format!("{CALLEE}:59010").parse().expect("address"),
        59020,
        &["-sn", "uas", "-m", &SIP_CALLS.to_string()],
    );
    let mut uac = sipp_calls(&lan.caller, &dir.0);
    let sip_keys = |r: &mut redis::Connection| {
        stored(r, &ka)
            .iter()
            .filter(|k| k.starts_with("sip/"))
            .count()
    };
    let up = wait_until(Duration::from_secs(15), || {
        sip_keys(&mut redis) == SIP_CALLS as usize
    });
    assert!(
        up,
        "A's keyspace holds {} of {SIP_CALLS} B2BUA calls\n{}",
        sip_keys(&mut redis),
        node_a.log_text()
    );
    std::thread::sleep(Duration::from_secs(1));

    // A dies; the address moves; B takes A's keyspace over.
    let killed_at = sent.load(Ordering::SeqCst);
    let killed = Instant::now();
    peers::kill(&mut node_a);
    lan.move_vip(&lan.a, &lan.b);
    let takeover = Command::new("ip")
        .args(["netns", "exec", &lan.b])
        .arg(tollgate_bin())
        .args(["ctl", "--config"])
        .arg(db.join("tollgate.toml"))
        .args(["takeover", &ka])
        .output()
        .expect("tollgate ctl takeover");
    let taken_at = sent.load(Ordering::SeqCst);
    let window = killed.elapsed();
    let out = String::from_utf8_lossy(&takeover.stdout).into_owned();
    assert!(
        takeover.status.success(),
        "ctl takeover: {out}{}\n{}",
        String::from_utf8_lossy(&takeover.stderr),
        node_b.log_text()
    );
    let taken: serde_json::Value = serde_json::from_str(out.trim()).expect("takeover JSON");
    // Each B2BUA call has its media session too.
    assert_eq!(taken["sessions"], NG_CALLS + SIP_CALLS, "{taken}");
    assert_eq!(taken["sip_calls"], SIP_CALLS, "{taken}");
    assert_eq!(taken["failed"], 0, "{taken}");
    let moved_over = wait_until(Duration::from_secs(2), || {
        stored(&mut redis, &ka).is_empty()
            && stored(&mut redis, &kb).len() == (NG_CALLS + 2 * SIP_CALLS) as usize
    });
    assert!(
        moved_over,
        "A's keyspace holds {} calls, B's {}: the calls taken belong to B's",
        stored(&mut redis, &ka).len(),
        stored(&mut redis, &kb).len()
    );

    sender.join().expect("sender");
    let got = receiver.join().expect("receiver");
    let mut lost = Vec::new();
    for (i, seqs) in got.iter().enumerate() {
        // Packets in flight at the kill (100 ms of them) may go with A.
        let before = (0..killed_at.saturating_sub(IN_FLIGHT)).filter(|s| !seqs.contains(s));
        assert_eq!(before.count(), 0, "call {i} lost packets A relayed");
        let after = (taken_at + 1..PACKETS).filter(|s| !seqs.contains(s));
        assert_eq!(after.count(), 0, "call {i} lost packets after B took over");
        lost.push(PACKETS as usize - seqs.len());
    }
    let bound = usize::from(taken_at - killed_at + IN_FLIGHT);
    println!(
        "failover: A killed at packet {killed_at}, B took over by packet {taken_at} ({window:?}); \
         lost per call {}..={} of {PACKETS} (bound {bound})",
        lost.iter().min().unwrap_or(&0),
        lost.iter().max().unwrap_or(&0)
    );
    assert!(lost.iter().all(|&l| l <= bound), "lost per call: {lost:?}");

    let taken = metric(&lan.b, &node_b, "tollgate_failover_calls_taken_total");
    assert_eq!(
        taken,
        Some(f64::from(NG_CALLS + 2 * SIP_CALLS)),
        "on B's /metrics"
    );

    // Released on B: NG deletes, and SIPp's BYEs.
    ng_delete(&lan.b, "failover-ng", 0..NG_CALLS);
    peers::wait_sipp_success(&mut uac, &dir.0.join("uac_errors.log"), || {
        node_b.log_text()
    });
    let all = (NG_CALLS + SIP_CALLS) as usize;
    let done = wait_until(Duration::from_secs(10), || cdr_ids(&db).len() >= all);
    assert!(
        done,
        "B wrote {} CDRs of {all}\n{}",
        cdr_ids(&db).len(),
        node_b.log_text()
    );

    // A comes back: fenced, it restores none of the calls it journaled.
    let node_a = start(&lan.a, &da, &config_a);
    let log = node_a.log_text();
    assert!(log.contains("this keyspace was taken over"), "{log}");
    assert!(
        log.contains("calls restored from the journal sessions=0"),
        "{log}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cdr_ids(&da), Vec::<String>::new(), "A wrote CDRs");
    let ids = cdr_ids(&db);
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        (ids.len(), distinct.len()),
        (all, all),
        "one CDR per call: {ids:?}"
    );
    for c in tollgate_tests::cdrs::jsonl(&db.join("cdr.jsonl")) {
        let sip = !c["call_id"]
            .as_str()
            .unwrap_or("")
            .starts_with("failover-ng-");
        let leg = |n: usize, dir: &str| c["legs"][n][dir]["packets"].as_u64().unwrap_or(0);
        // B relayed media of every call after the takeover.
        assert!(leg(0, "received") > 0 && leg(1, "sent") > 0, "{c}");
        if sip {
            assert_eq!(c["hangup_by"], "caller", "{c}");
        }
    }
    let owner: Option<String> = redis::cmd("GET")
        .arg(format!("tollgate:keyspace:{ka}:owner"))
        .query(&mut redis)
        .expect("owner");
    assert_eq!(
        owner.as_deref(),
        Some(ka.as_str()),
        "A claimed its keyspace back"
    );
    forget(&mut redis, &[&ka, &kb]);
    drop(node_b);
    drop(node_a);
}

/// Redis away: NG calls are answered at once and change on (started,
/// deleted), the outage is logged once, and when Redis is back the node's
/// keyspace holds exactly the calls live then.
#[test]
fn with_redis_away_calls_go_on_and_the_keyspace_is_caught_up_when_it_is_back() {
    tollgate_tests::require_root();
    let (url, redis_at, mut redis) = redis();
    let lan = Lan::new();
    let dir = TempDir::new("tg-failover-outage");
    let k = netns::unique("tgfo");
    let relay = RedisRelay::start(&lan.a, redis_at);
    let other = netns::unique("tgfn");
    let config = node_config(&dir.0, &url, &k, &other);
    let node = peers::tollgate_run(Some(&lan.a), &dir.0, &config, &[], NG.parse().expect("NG"));
    relay.switch(false);
    let (a_at, b_at): (SocketAddr, SocketAddr) = (
        format!("{CALLER}:49100").parse().expect("address"),
        format!("{CALLEE}:49110").parse().expect("address"),
    );
    let t0 = Instant::now();
    ng_calls(&lan.a, "outage", 10, a_at, b_at);
    ng_delete(&lan.a, "outage", 0..4);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "10 calls and 4 deletes took {took:?} with Redis away"
    );
    let noticed = wait_until(Duration::from_secs(5), || {
        node.log_text().contains("Redis unavailable")
    });
    assert!(noticed, "{}", node.log_text());
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        stored(&mut redis, &k).is_empty(),
        "written with Redis away?"
    );

    relay.switch(true);
    let want: BTreeSet<String> = (4..10).map(|i| format!("media/outage-{i}")).collect();
    let caught_up = wait_until(Duration::from_secs(5), || {
        stored(&mut redis, &k).into_iter().collect::<BTreeSet<_>>() == want
    });
    assert!(
        caught_up,
        "keyspace holds {:?}\n{}",
        stored(&mut redis, &k),
        node.log_text()
    );
    let log = node.log_text();
    assert_eq!(
        log.matches("Redis unavailable").count(),
        1,
        "logged once: {log}"
    );
    assert!(log.contains("Redis back"), "{log}");
    let errors = metric(&lan.a, &node, "tollgate_failover_write_errors_total");
    assert!(
        errors.is_some_and(|n| n >= 1.0),
        "write errors counted: {errors:?}"
    );
    let up = metric(&lan.a, &node, "tollgate_failover_redis_up");
    assert_eq!(up, Some(1.0), "Redis up again on /metrics");

    // The HTTP API takes keyspaces over as `ctl takeover` does: one it may
    // take (empty here), and not one it may not.
    let (status, body) = post(
        &lan.a,
        &node,
        "/api/failover/takeover",
        format!("{{\"keyspace\": \"{other}\"}}"),
    );
    assert_eq!(
        (status, &body["by"], &body["sessions"]),
        (200, &k.clone().into(), &0.into()),
        "{body}"
    );
    let (status, body) = post(
        &lan.a,
        &node,
        "/api/failover/takeover",
        format!("{{\"keyspace\": \"{k}x\"}}"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("not in this node's failover.takeover"),
        "{body}"
    );

    ng_delete(&lan.a, "outage", 4..10);
    let emptied = wait_until(Duration::from_secs(2), || stored(&mut redis, &k).is_empty());
    assert!(
        emptied,
        "ended calls left in Redis: {:?}",
        stored(&mut redis, &k)
    );
    forget(&mut redis, &[&k, &other]);
    drop(node);
}
