//! Floods and abuse, against a real node (`tollgate run`, socket backend on
//! loopback) with real SIPp peers: a SIP flood from one source at ten times
//! the node's measured call capacity (docs/benchmarks.md: about 700 cps)
//! is banned while another source's calls complete; repeated refused
//! credentials ban their source; NG from a source outside `ng.allow` is
//! dropped unanswered; drain mode refuses new calls and lets calls in
//! progress finish; the data plane's control socket serves only the users
//! it is told to.
//!
//! Loopback has many addresses: the flooder speaks from 127.0.0.5, the
//! honest peers from 127.0.0.1.
//!
//! Ports: SIP 54000-54099, relay media 54100-54999, NG 22520-22529, HTTP
//! 9200-9209.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_tests::peers::{self, Proc};
use tollgate_tests::{wait_until, TempDir};

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

const HONEST: [u8; 4] = [127, 0, 0, 1];
const FLOODER: [u8; 4] = [127, 0, 0, 5];

/// A B2BUA node on `sip` (routes 6000 to `uas`), NG on `ng`, HTTP on
/// `http`, relay ports `ports`, plus `extra` config.
fn node(
    dir: &Path,
    sip: u16,
    ng: u16,
    http: u16,
    ports: (u16, u16),
    uas: u16,
    extra: &str,
) -> Proc {
    let sections = format!(
        "[sip]\nlisten = \"127.0.0.1:{sip}\"\n{extra}\n[[sip.routes]]\nmatch = \"6000\"\n\
         target = \"sip:6000@127.0.0.1:{uas}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n"
    );
    let ng = format!("127.0.0.1:{ng}");
    peers::tollgate_loopback(dir, &ng, ports, &[], &sections).0
}

/// SIPp's built-in `uac` placing `calls` calls to 6000 at `rate` per second
/// from 127.0.0.1:`port` (each held `hold_ms`), with its statistics in
/// `uac_stat.csv` and its messages in `uac_messages.log`.
fn caller(
    dir: &Path,
    node: u16,
    port: u16,
    media: u16,
    calls: u32,
    rate: u32,
    hold_ms: u32,
) -> Proc {
    peers::require("sipp");
    let (calls, rate, hold) = (calls.to_string(), rate.to_string(), hold_ms.to_string());
    let mut cmd = Command::new("timeout");
    cmd.args([
        "-s",
        "INT",
        "-k",
        "10",
        "90",
        "sipp",
        &format!("127.0.0.1:{node}"),
    ])
    .args([
        "-sn",
        "uac",
        "-s",
        "6000",
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ])
    .args([
        "-bind_local",
        "-nostdin",
        "-mi",
        "127.0.0.1",
        "-mp",
        &media.to_string(),
    ])
    .args([
        "-m", &calls, "-l", &calls, "-r", &rate, "-d", &hold, "-timeout", "80s",
    ])
    .args([
        "-trace_stat",
        "-stf",
        "uac_stat.csv",
        "-trace_err",
        "-error_file",
    ])
    .arg(dir.join("uac_errors.log"))
    .args(["-trace_msg", "-message_file"])
    .arg(dir.join("uac_messages.log"))
    .current_dir(dir);
    peers::spawn(cmd, dir, "sipp-uac")
}

/// SIPp's last statistics line: the value of column `name`.
fn stat(dir: &Path, name: &str) -> f64 {
    let text = std::fs::read_to_string(dir.join("uac_stat.csv")).expect("SIPp statistics");
    let head = text.lines().next().unwrap_or("");
    let last = text.lines().last().unwrap_or("");
    let i = head
        .split(';')
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no SIPp column {name}"));
    last.split(';')
        .nth(i)
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

/// An out-of-dialog request from `from` to `to` with a fresh Call-ID and
/// branch `n`.
fn request(
    method: &str,
    user: &str,
    from: SocketAddr,
    to: SocketAddr,
    n: u64,
    extra: &str,
) -> Vec<u8> {
    format!(
        "{method} sip:{user}@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKflood{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@{from}>;tag=f{n}\r\nTo: <sip:{user}@{to}>\r\n\
         Call-ID: flood-{n}@{from}\r\nCSeq: 1 {method}\r\nContact: <sip:{user}@{from}>\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The Call-IDs of every response waiting on `sock`.
fn answered(sock: &UdpSocket, into: &mut HashSet<String>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]);
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("Call-ID: ")) {
            into.insert(id.trim().to_string());
        }
    }
}

/// Sends `per_ms` INVITEs every millisecond for `secs` from FLOODER to
/// `node` (to a number with no route: each unbanned one costs a 404);
/// returns (sent, the Call-IDs answered).
fn flood(node: SocketAddr, per_ms: u64, secs: u64) -> (u64, HashSet<String>) {
    let sock = UdpSocket::bind(addr(FLOODER, 0)).expect("flooder socket");
    sock.set_nonblocking(true).expect("nonblocking");
    let from = sock.local_addr().expect("local");
    let (mut sent, mut seen) = (0u64, HashSet::new());
    let start = Instant::now();
    let total = per_ms * 1000 * secs;
    while sent < total && start.elapsed() < Duration::from_secs(secs + 5) {
        let due = start.elapsed().as_millis() as u64 * per_ms;
        while sent < due.min(total) {
            let _ = sock.send_to(&request("INVITE", "9999", from, node, sent, ""), node);
            sent += 1;
        }
        answered(&sock, &mut seen);
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(200));
    answered(&sock, &mut seen);
    (sent, seen)
}

#[test]
fn a_sip_flood_is_banned_at_its_source_while_another_sources_calls_complete() {
    let dir = TempDir::new("tg-abuse-flood");
    let (sip, uas) = (54000, 54010);
    let node = node(&dir.0, sip, 22520, 9200, (54100, 54499), uas, "");
    const CALLS: u32 = 300;
    let _callee = peers::sipp_uas_with(
        None,
        &dir.0,
        addr(HONEST, uas),
        54012,
        &["-sn", "uas", "-m", &CALLS.to_string()],
    );
    let mut honest = caller(&dir.0, sip, 54001, 54070, CALLS, 30, 1000);
    // 7 INVITEs a millisecond for 10 s: 70,000, ten times the node's capacity.
    let (sent, seen) = flood(addr(HONEST, sip), 7, 10);
    let st = honest.child.wait().expect("sipp uac");
    let ok = stat(&dir.0, "SuccessfulCall(C)");
    let failed: Vec<String> = [
        "FailedCallRejected(C)",
        "FailedMaxUDPRetrans(C)",
        "FailedUnexpectedMessage(C)",
        "FailedTimeoutOnRecv(C)",
        "FailedRegexpDoesntMatch(C)",
        "FailedCmdNotSent(C)",
    ]
    .iter()
    .map(|c| format!("{c}={}", stat(&dir.0, c)))
    .collect();
    let errors = std::fs::read_to_string(dir.0.join("uac_errors.log")).unwrap_or_default();
    assert!(
        ok >= f64::from(CALLS) * 0.99,
        "{ok} of {CALLS} honest calls completed during the flood ({st}); {failed:?}\n{}\n{}",
        &errors[..errors.len().min(3000)],
        node.log_text()
    );
    // Allowed: 200 a second over the 2 s window; everything after is dropped.
    assert_eq!(sent, 70_000);
    assert!(
        seen.len() <= 450,
        "{} of {sent} flooded INVITEs were answered: the ban did not hold\n{}",
        seen.len(),
        node.log_text()
    );
    assert!(
        seen.len() >= 300,
        "only the first {} INVITEs got 404s",
        seen.len()
    );
    let log = node.log_text();
    assert!(
        log.contains("SIP flood: source banned") && log.contains("127.0.0.5"),
        "{log}"
    );
    assert!(
        !log.contains("source=127.0.0.1 "),
        "the honest source was banned: {log}"
    );
    let metrics = ureq::get("http://127.0.0.1:9200/metrics")
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert_eq!(value("tollgate_sip_bans_total{reason=\"flood\"}"), 1.0);
    let dropped = value("tollgate_sip_banned_dropped_total");
    assert!(
        dropped + seen.len() as f64 >= 69_000.0,
        "{dropped} dropped as banned"
    );
}

#[test]
fn refused_credentials_ban_their_source_after_the_limit() {
    let dir = TempDir::new("tg-abuse-auth");
    let sip = 54020;
    let extra = "users = [{ name = \"alice\", password = \"secret\" }]\n\
                 [sip.flood]\nmax_auth_failures = 5\nban_secs = 60\n";
    let node = node(&dir.0, sip, 22521, 9201, (54500, 54599), 54030, extra);
    let target = addr(HONEST, sip);
    let sock = UdpSocket::bind(addr(FLOODER, 0)).expect("socket");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let from = sock.local_addr().expect("local");
    let bad = "Authorization: Digest username=\"mallory\", realm=\"tollgate\", nonce=\"x\", \
               uri=\"sip:x\", response=\"00000000000000000000000000000000\"\r\n";
    let mut codes = Vec::new();
    for n in 0..7 {
        sock.send_to(
            &request("REGISTER", "mallory", from, target, n, bad),
            target,
        )
        .expect("send");
        let mut buf = [0u8; 4096];
        codes.push(match sock.recv(&mut buf) {
            Ok(len) => String::from_utf8_lossy(&buf[..len])
                .split_whitespace()
                .nth(1)
                .unwrap_or("?")
                .to_string(),
            Err(_) => "none".to_string(),
        });
    }
    assert_eq!(
        codes,
        ["403", "403", "403", "403", "403", "none", "none"],
        "{}",
        node.log_text()
    );
    // Another source is still answered (challenged).
    let other = UdpSocket::bind(addr(HONEST, 0)).expect("socket");
    other
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let from = other.local_addr().expect("local");
    other
        .send_to(&request("REGISTER", "alice", from, target, 99, ""), target)
        .expect("send");
    let mut buf = [0u8; 4096];
    let len = other
        .recv(&mut buf)
        .expect("a challenge for the other source");
    assert!(String::from_utf8_lossy(&buf[..len]).starts_with("SIP/2.0 401"));
    assert!(node
        .log_text()
        .contains("repeated digest failures: source banned"));
}

/// An NG `ping` from `from` over UDP: the reply, if one came within 1 s.
fn ng_ping(from: [u8; 4], ng: SocketAddr) -> Option<String> {
    let sock = UdpSocket::bind(addr(from, 0)).expect("socket");
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    sock.send_to(b"c1 d7:command4:pinge", ng).expect("send");
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn ng_from_a_source_outside_the_allow_list_is_dropped_unanswered() {
    let dir = TempDir::new("tg-abuse-ng");
    let ng = addr(HONEST, 22522);
    let (node, _) = peers::tollgate_loopback(
        &dir.0,
        &ng.to_string(),
        (54600, 54699),
        &[],
        "[ng]\nallow = [\"127.0.0.1/32\"]\n",
    );
    assert_eq!(ng_ping(HONEST, ng).as_deref(), Some("c1 d6:result4:ponge"));
    assert_eq!(ng_ping(FLOODER, ng), None, "{}", node.log_text());
    // Over TCP the stranger's connection is closed without a reply.
    let mut tcp = TcpStream::connect_timeout(&ng, Duration::from_secs(2)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    tcp.write_all(b"c2 d7:command4:pinge").expect("write");
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply);
    assert!(reply.starts_with(b"c2 d6:result4:pong"), "{reply:?}");
    let sock = tcp_ping_from(FLOODER, ng);
    let mut reply = Vec::new();
    let read = (&sock).read_to_end(&mut reply);
    let closed = match &read {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(
        reply.is_empty() && closed,
        "a stranger's TCP stream was served or left open: {read:?} {reply:?}"
    );
    assert!(node.log_text().contains("not in ng.allow"));
}

/// A TCP connection to `to` from address `from` (std cannot bind a
/// connecting socket; libc can), with a ping written on it.
fn tcp_ping_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor we own; it becomes the stream.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0);
    let sa = |a: SocketAddr| {
        let SocketAddr::V4(v4) = a else {
            unreachable!()
        };
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        }
    };
    let (local, remote) = (sa(addr(from, 0)), sa(to));
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: both sockaddrs are live locals of `len` bytes.
    unsafe {
        assert_eq!(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
            0
        );
        assert_eq!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
            0
        );
    }
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` is a connected stream socket nothing else owns.
    let mut stream = unsafe { TcpStream::from_raw_fd(fd) };
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let _ = stream.write_all(b"c3 d7:command4:pinge");
    stream
}

fn http(port: u16, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let req = ureq::request(method, &url).timeout(Duration::from_secs(5));
    let res = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    let (code, text) = match res {
        Ok(r) => (r.status(), r.into_string().expect("body")),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {url}: {e}"),
    };
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn drain_refuses_new_calls_and_lets_calls_in_progress_finish() {
    let dir = TempDir::new("tg-abuse-drain");
    let (sip, uas, web) = (54040, 54050, 9202);
    let ng = addr(HONEST, 22523);
    let node = node(&dir.0, sip, ng.port(), web, (54700, 54799), uas, "");
    let _callee = peers::sipp_uas_with(
        None,
        &dir.0,
        addr(HONEST, uas),
        54052,
        &["-sn", "uas", "-m", "2"],
    );
    let long = dir.0.join("long");
    std::fs::create_dir_all(&long).expect("dir");
    let mut in_progress = caller(&long, sip, 54041, 54060, 1, 1, 6000);
    let answered = wait_until(Duration::from_secs(10), || {
        http(web, "GET", "/api/calls", None).1["calls"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["state"] != "calling"))
    });
    assert!(
        answered,
        "the first call was not answered\n{}",
        node.log_text()
    );

    let (code, state) = http(web, "POST", "/api/drain", Some(json!({"drain": true})));
    assert_eq!((code, state["draining"].clone()), (200, json!(true)));
    assert_eq!(state["calls"], 1);
    let (ready, why) = http(web, "GET", "/ready", None);
    assert_eq!((ready, why["draining"].clone()), (503, json!(true)));

    let refused = dir.0.join("refused");
    std::fs::create_dir_all(&refused).expect("dir");
    let mut new_call = caller(&refused, sip, 54042, 54090, 1, 1, 100);
    let st = new_call.child.wait().expect("sipp");
    assert!(!st.success(), "a new call went through while draining");
    let msgs = std::fs::read_to_string(refused.join("uac_messages.log")).unwrap_or_default();
    assert!(msgs.contains("SIP/2.0 503 Draining"), "{msgs}");
    let offer = peers::ng_client(None, ng).raw(tollgate_ng::Value::dict([
        ("command", tollgate_ng::Value::str("offer")),
        ("call-id", tollgate_ng::Value::str("drain-ng-1")),
        ("from-tag", tollgate_ng::Value::str("a")),
        ("sdp", tollgate_ng::Value::str(SDP)),
    ]));
    let offer = format!("{offer:?}");
    assert!(offer.contains("draining"), "{offer}");

    let st = in_progress.child.wait().expect("sipp");
    assert!(
        st.success(),
        "the call in progress did not finish: {}",
        node.log_text()
    );
    assert_eq!(stat(&long, "SuccessfulCall(C)"), 1.0);

    let (code, state) = http(web, "POST", "/api/drain", Some(json!({"drain": false})));
    assert_eq!((code, state["draining"].clone()), (200, json!(false)));
    let after = dir.0.join("after");
    std::fs::create_dir_all(&after).expect("dir");
    let mut again = caller(&after, sip, 54043, 54080, 1, 1, 100);
    assert!(
        again.child.wait().expect("sipp").success(),
        "{}",
        node.log_text()
    );
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// `tollgate ctl flows` on `socket` as the user `nobody`.
fn ctl_as_nobody(socket: &Path) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(tollgate_tests::process::tollgate_bin())
        .args(["ctl", "--socket"])
        .arg(socket)
        .arg("flows")
        .output()
        .expect("setpriv (util-linux)")
}

#[test]
fn the_control_socket_serves_only_root_its_own_user_and_those_configured() {
    use std::os::unix::fs::PermissionsExt;
    tollgate_tests::require_root();
    let dir = TempDir::new("tg-abuse-ctl");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (node, socket) =
        peers::tollgate_loopback(&dir.0, "127.0.0.1:22524", (54800, 54849), &[], "");
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "the socket file's mode");
    // Opened to everyone on the file system, the peer check still refuses.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = ctl_as_nobody(&socket);
    assert!(!out.status.success(), "nobody was served: {out:?}");
    assert!(
        node.log_text().contains("not in dataplane.control_uids"),
        "{}",
        node.log_text()
    );
    drop(node);

    let dir = TempDir::new("tg-abuse-ctl-uid");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (_node, socket) = peers::tollgate_loopback(
        &dir.0,
        "127.0.0.1:22525",
        (54850, 54899),
        &[],
        "control_uids = [65534]\n",
    );
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = ctl_as_nobody(&socket);
    assert!(
        out.status.success(),
        "a configured uid was refused: {out:?}"
    );
}
