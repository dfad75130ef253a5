//! SIP over WebSocket (RFC 7118) on the B2BUA, with a real browser SIP
//! stack: JsSIP (under Node.js, with the `ws` WebSocket; both installed by
//! scripts/setup.sh) registers over WS and over WSS with digest, and a SIPp
//! caller's INVITE reaches it on the connection it registered on; its 180
//! and 486 come back to the caller. A handshake without the `sip`
//! subprotocol is refused.
//!
//! The B2BUA knows a stream peer by its address and port: two connections
//! from one address and port to two of its listeners (WS and WSS) would be
//! taken for one, which the kernel can make of two clients on this host;
//! the clients here take turns.
//!
//! Ports: SIP 55300-55399 (a node's SIP on `base`, NG +1, WS +2, WSS +3,
//! the UAC +20 and its media +50), relay 55400-55499.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;
use tollgate_tests::peers::{self, Proc};
use tollgate_tests::TempDir;

const JSSIP: &str = "/opt/jssip/node_modules";
const UA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/ws/jssip-ua.js");
const BUSY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/b2bua/uac_busy.xml");

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A node with SIP at `base`, WS at +2 and WSS at +3 (the certificate
/// `cert`/`key`), users 7001 and 7002, and 7xxx routed to where they
/// registered.
fn node(dir: &Path, base: u16, cert: &Path, key: &Path) -> Proc {
    let sections = format!(
        r#"
[sip]
listen = "{sip}"
ws_listen = "{ws}"
wss_listen = "{wss}"
tls_cert = "{cert}"
tls_key = "{key}"
users = [{{ name = "7001", password = "s1" }}, {{ name = "7002", password = "s2" }}]
trusted = ["127.0.0.1/32"]
[[sip.routes]]
match = "7xxx"
target = "registered"
[cdr]
spool_dir = "{d}/spool"
sinks = [{{ kind = "jsonl", path = "{d}/cdr.jsonl" }}]
"#,
        sip = addr(base),
        ws = addr(base + 2),
        wss = addr(base + 3),
        cert = cert.display(),
        key = key.display(),
        d = dir.display(),
    );
    let ng = addr(base + 1).to_string();
    peers::tollgate_loopback(dir, &ng, (55400, 55499), &[], &sections).0
}

/// JsSIP as `user`, connected to `url`, trusting `ca` for wss://; waits
/// until it registered.
fn jssip(dir: &Path, name: &'static str, url: &str, user: &str, password: &str, ca: &Path) -> Proc {
    peers::require("node");
    assert!(
        Path::new(JSSIP).join("jssip").exists() && Path::new(JSSIP).join("ws").exists(),
        "JsSIP and ws are not installed in {JSSIP}: run scripts/setup.sh"
    );
    let mut cmd = std::process::Command::new("node");
    cmd.env("NODE_PATH", JSSIP)
        .arg(UA)
        .args([url, user, password, "tollgate"])
        .arg(ca);
    let mut p = peers::spawn(cmd, dir, name);
    let registered = tollgate_tests::wait_until(Duration::from_secs(15), || {
        assert!(
            p.child.try_wait().ok().flatten().is_none(),
            "{name} exited: {}",
            p.log_text()
        );
        let log = p.log_text();
        assert!(!log.contains("registration_failed"), "{name}: {log}");
        log.contains("\"registered\"")
    });
    assert!(
        registered,
        "{name} did not register over {url}: {}",
        p.log_text()
    );
    p
}

/// The events JsSIP printed, one JSON object a line.
fn events(ua: &Proc) -> Vec<serde_json::Value> {
    ua.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn jssip_registers_over_ws_and_wss_and_takes_calls_on_its_connection() {
    let dir = TempDir::new("sip-ws");
    let base = 55300;
    let (cert, key) = tollgate_tests::tls::self_signed(&dir.0);
    let tg = node(&dir.0, base, &cert, &key);
    let (ws, wss) = (
        format!("ws://{}", addr(base + 2)),
        format!("wss://{}", addr(base + 3)),
    );
    // One client at a time: the kernel may give two clients on this host the
    // same source port towards the two listeners, and a stream peer is
    // known by its address (see the module doc).
    for (name, url, user, password, via) in [
        ("jssip-ws", ws, "7001", "s1", "SIP/2.0/WS "),
        ("jssip-wss", wss, "7002", "s2", "SIP/2.0/WSS "),
    ] {
        let ua = &jssip(&dir.0, name, &url, user, password, &cert);
        // The caller expects 486 (with a 180 first): JsSIP's, relayed.
        let (rc, log) = peers::sipp_uac(
            None,
            &dir.0,
            addr(base + 20),
            base + 50,
            addr(base),
            &["-sf", BUSY, "-s", user, "-m", "1"],
        );
        assert_eq!(
            rc,
            0,
            "the call to {user} did not end in its 486: {log}\n{}\n{}",
            ua.log_text(),
            tg.log_text()
        );
        let got = events(ua);
        let incoming = got
            .iter()
            .find(|e| e["event"] == "incoming")
            .unwrap_or_else(|| panic!("{user} got no INVITE: {got:?}"));
        assert_eq!(incoming["from"], "sipp", "{incoming}");
        assert!(
            incoming["via"].as_str().is_some_and(|v| v.starts_with(via)),
            "{user}'s INVITE came with Via {}, not over {via}",
            incoming["via"]
        );
        assert!(got.iter().any(|e| e["event"] == "rejected"), "{got:?}");
    }

    // One CDR per call, each the callee's 486.
    let path = dir.0.join("cdr.jsonl");
    let ended = || -> Vec<serde_json::Value> {
        tollgate_tests::cdrs::jsonl(&path)
            .into_iter()
            .filter(|r| r["event"] == "call.ended")
            .collect()
    };
    assert!(
        tollgate_tests::wait_until(Duration::from_secs(10), || ended().len() >= 2),
        "two CDRs expected: {:?}",
        ended()
    );
    std::thread::sleep(Duration::from_millis(500));
    let cdrs = ended();
    assert_eq!(cdrs.len(), 2, "{cdrs:?}");
    for c in &cdrs {
        assert_eq!(c["sip_code"], 486, "{c}");
    }
}

/// The HTTP response head to a WebSocket handshake offering `protocol`.
fn handshake(at: SocketAddr, protocol: Option<&str>) -> String {
    let mut s = TcpStream::connect(at).expect("WS listener");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let offer = protocol
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {at}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn a_websocket_client_without_the_sip_subprotocol_is_refused() {
    let dir = TempDir::new("sip-ws");
    let base = 55330;
    let (cert, key) = tollgate_tests::tls::self_signed(&dir.0);
    let _tg = node(&dir.0, base, &cert, &key);
    let at = addr(base + 2);
    for refused in [None, Some("chat")] {
        let head = handshake(at, refused);
        assert!(head.starts_with("HTTP/1.1 400"), "{refused:?}: {head}");
    }
    let head = handshake(at, Some("chat, sip"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: sip\r\n"),
        "{head}"
    );
}
