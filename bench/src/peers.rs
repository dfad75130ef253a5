//! How Tollgate's peers are started, shared by the benchmarks and the
//! tests: Kamailio as a stateful proxy calling an NG relay
//! (`bench/peers/kamailio.cfg`), rtpengine in userspace on loopback, and a
//! SIP OPTIONS probe that says when a SIP server answers.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// SIPp's built-in UAS without the 180 (a multi-process proxy can reorder
/// 180 and 200, which the built-in UAC treats as an error).
pub const UAS_NO180: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/uas_no180.xml");

/// `program`, inside network namespace `netns` when given.
pub fn command(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    }
}

/// Kamailio 5.6 as a stateful proxy on `listen` forwarding to `uas`, calling
/// rtpengine_offer/answer/delete on the NG relay at `ng` with `flags`;
/// runtime files under `dir`.
pub fn kamailio(
    netns: Option<&str>,
    dir: &Path,
    listen: SocketAddr,
    uas: SocketAddr,
    ng: SocketAddr,
    flags: &str,
) -> Command {
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/kamailio.cfg");
    let mut cmd = command(netns, "kamailio");
    cmd.args(["-f", cfg])
        .args(["-A", &format!("LISTEN=udp:{listen}")])
        .args(["-A", &format!("UAS_URI=\"sip:{uas}\"")])
        .args(["-A", &format!("NG_SOCK=\"udp:{ng}\"")])
        .args(["-A", &format!("RTPE_FLAGS=\"{flags}\"")])
        .args([
            "-A",
            &format!("CTL_SOCK=\"unix:{}/kamailio_ctl\"", dir.display()),
        ])
        .args([
            "-A",
            "WITH_MEDIA",
            "-n",
            "2",
            "-m",
            "1024",
            "-M",
            "16",
            "-DD",
            "-E",
        ])
        .arg("-Y")
        .arg(dir)
        .arg("-w")
        .arg(dir);
    cmd
}

/// rtpengine 10.5 forwarding in userspace on 127.0.0.1, NG at `ng`.
pub fn rtpengine(dir: &Path, ng: SocketAddr, ports: (u16, u16)) -> Command {
    rtpengine_on(dir, ng, ports, &["127.0.0.1"])
}

/// [`rtpengine`] with the given `--interface` values (`[NAME/]ADDRESS`).
pub fn rtpengine_on(dir: &Path, ng: SocketAddr, ports: (u16, u16), interfaces: &[&str]) -> Command {
    let mut cmd = Command::new("rtpengine");
    cmd.args(["--config-file=none", "--table=-1"])
        .args(interfaces.iter().map(|i| format!("--interface={i}")))
        .args(["--foreground", "--log-stderr"])
        .arg(format!("--listen-ng={ng}"))
        .arg(format!("--port-min={}", ports.0))
        .arg(format!("--port-max={}", ports.1))
        .args(["--delete-delay=0", "--log-level=5"])
        .arg(format!("--pidfile={}/rtpengine.pid", dir.display()));
    cmd
}

/// Sends OPTIONS to `listen` until a 200 comes back, for at most `within`.
pub fn answers_options(listen: SocketAddr, within: Duration) -> bool {
    let Ok(s) = UdpSocket::bind(SocketAddr::new(listen.ip(), 0)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(local) = s.local_addr() else {
        return false;
    };
    let id = std::process::id();
    let msg = format!(
        "OPTIONS sip:{listen} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{id}\r\nFrom: <sip:probe@{local}>;tag=p\r\nTo: <sip:{listen}>\r\nCall-ID: probe-{id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\nContent-Length: 0\r\n\r\n"
    );
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let _ = s.send_to(msg.as_bytes(), listen);
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            if buf[..n].starts_with(b"SIP/2.0 200") {
                return true;
            }
        }
    }
    false
}
