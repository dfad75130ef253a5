//! The NG server of a real `tollgate run`, spoken to on the wire: retransmitted
//! requests get the cached reply without a second action, malformed messages
//! get an error naming the problem (with the request's cookie) and change
//! nothing, TCP streams may split or join messages, and SDP offered to
//! Tollgate and to rtpengine comes back equivalent.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;
use tollgate_ng::{Message, Value};
use tollgate_sip::sdp::Sdp;
use tollgate_tests::peers;
use tollgate_tests::TempDir;

fn start(dir: &TempDir, ng: &str, ports: (u16, u16)) -> peers::Proc {
    peers::tollgate_loopback(&dir.0, ng, ports, &["--delete-delay", "0"], "").0
}

fn offer_body(call: &str, port: u16) -> Value {
    let sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8\r\n");
    Value::dict([
        ("command", Value::str("offer")),
        ("call-id", Value::str(call)),
        ("from-tag", Value::str("a")),
        ("sdp", Value::str(&sdp)),
        (
            "replace",
            Value::List(vec![Value::str("origin"), Value::str("session-connection")]),
        ),
    ])
}

/// Sends `bytes` and returns the raw reply datagram.
fn udp_raw(sock: &UdpSocket, to: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    sock.send_to(bytes, to).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = sock.recv_from(&mut buf).expect("NG reply");
    buf.truncate(n);
    buf
}

fn udp_exchange(sock: &UdpSocket, to: SocketAddr, bytes: &[u8]) -> Message {
    let reply = udp_raw(sock, to, bytes);
    Message::decode_prefix(&reply).expect("reply parses").0
}

/// A body-less command (`list`, `statistics`) under `cookie`.
fn bare(sock: &UdpSocket, to: SocketAddr, cookie: &[u8], command: &str) -> Message {
    let req = Message::new(cookie, Value::dict([("command", Value::str(command))]));
    udp_exchange(sock, to, &req.encode())
}

fn calls(sock: &UdpSocket, to: SocketAddr, cookie: &[u8]) -> Option<Value> {
    bare(sock, to, cookie, "list").body.get("calls").cloned()
}

/// One `totalstatistics` field of an NG `statistics` reply.
fn total(sock: &UdpSocket, to: SocketAddr, cookie: &[u8], field: &str) -> Option<i64> {
    let r = bare(sock, to, cookie, "statistics");
    let v = r.body.get("statistics")?.get("totalstatistics")?.get(field);
    v.and_then(Value::as_int)
}

/// Retransmissions are answered from the cache, not handled again: the
/// same bytes come back even when handling again would answer differently
/// (a `delete` of a call already gone gets a warning; an `offer` for it
/// would create it again).
fn retransmissions_get_the_cached_reply(sock: &UdpSocket, ng: SocketAddr) {
    let offer = Message::new(b"retx-1", offer_body("r1", 9000)).encode();
    let first = udp_raw(sock, ng, &offer);
    assert_eq!(udp_raw(sock, ng, &offer), first, "a retransmitted offer");
    let reply = Message::decode_prefix(&first).expect("reply parses").0;
    assert_eq!(reply.cookie, b"retx-1");
    assert_eq!(
        calls(sock, ng, b"l1"),
        Some(Value::List(vec![Value::str("r1")]))
    );
    // A new cookie is a new request: a re-offer, which keeps the call's ports.
    let reoffer = udp_exchange(
        sock,
        ng,
        &Message::new(b"retx-2", offer_body("r1", 9000)).encode(),
    );
    assert_eq!(reoffer.body.get("sdp"), reply.body.get("sdp"));

    let delete = Value::dict([
        ("command", Value::str("delete")),
        ("call-id", Value::str("r1")),
    ]);
    let delete = Message::new(b"del-1", delete).encode();
    let deleted = udp_raw(sock, ng, &delete);
    assert_eq!(calls(sock, ng, b"l2"), Some(Value::List(vec![])), "deleted");
    let again = udp_raw(sock, ng, &delete);
    assert_eq!(
        String::from_utf8_lossy(&again),
        String::from_utf8_lossy(&deleted),
        "a retransmitted delete gets the first reply, not a second delete's warning"
    );
    assert_eq!(
        udp_raw(sock, ng, &offer),
        first,
        "a late retransmitted offer"
    );
    assert_eq!(
        calls(sock, ng, b"l3"),
        Some(Value::List(vec![])),
        "a retransmission does not create the deleted call again"
    );
    assert_eq!(total(sock, ng, b"s1", "managedsessions"), Some(1));
}

#[test]
fn retransmissions_bad_input_and_tcp_framing() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgng");
    let ng: SocketAddr = "127.0.0.1:22422".parse().unwrap();
    let _tg = start(&dir, "127.0.0.1:22422", (33000, 33099));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();

    retransmissions_get_the_cached_reply(&sock, ng);

    // Malformed input: answered with the cookie, counted, nothing created.
    assert_eq!(total(&sock, ng, b"s2", "malformedmessages"), Some(0));
    let bad = udp_exchange(&sock, ng, b"bad-1 d7:command5:offer4:sdp");
    assert_eq!(bad.cookie, b"bad-1");
    assert_eq!(
        bad.body.get("result").and_then(Value::as_str),
        Some("error")
    );
    assert!(bad
        .body
        .get("error-reason")
        .and_then(Value::as_str)
        .unwrap()
        .contains("ends before it is complete"));
    // Well-formed, but not a valid request: the handler refuses it.
    let bad = udp_exchange(&sock, ng, b"bad-2 d7:commandi5ee");
    assert_eq!(
        bad.body.get("error-reason").and_then(Value::as_str),
        Some("`command` must be a string")
    );
    let bad = udp_exchange(&sock, ng, b"bad-3 li1ee");
    assert!(bad
        .body
        .get("error-reason")
        .and_then(Value::as_str)
        .unwrap()
        .contains("not a bencoded dictionary"));
    // Broken JSON is answered in JSON.
    let bad = udp_exchange(&sock, ng, br#"bad-5 {"command": "offer", "#);
    assert_eq!(bad.format, tollgate_ng::Format::Json, "{bad:?}");
    assert_eq!(
        bad.body.get("result").and_then(Value::as_str),
        Some("error")
    );
    sock.send_to(b"no-space-no-cookie", ng).unwrap(); // unanswerable: dropped
    let bad_sdp = Value::dict([
        ("command", Value::str("offer")),
        ("call-id", Value::str("bad-sdp")),
        ("from-tag", Value::str("a")),
        ("sdp", Value::str("v=0\r\nthis is not sdp\r\n")),
    ]);
    let r = udp_exchange(&sock, ng, &Message::new(b"bad-4", bad_sdp).encode());
    assert!(r
        .body
        .get("error-reason")
        .and_then(Value::as_str)
        .unwrap()
        .starts_with("offer SDP: SDP line 2"));
    assert_eq!(
        calls(&sock, ng, b"l4"),
        Some(Value::List(vec![])),
        "bad input created nothing"
    );
    // bad-1 (truncated), bad-3 (not a dictionary), bad-5 (broken JSON) and
    // the cookie-less datagram; bad-2 and bad-4 parse and are refused by
    // the handler.
    assert_eq!(total(&sock, ng, b"s3", "malformedmessages"), Some(4));

    // TCP: two requests in one write, then one split across writes.
    let mut tcp = TcpStream::connect(ng).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let ping = |c: &[u8]| Message::new(c, Value::dict([("command", Value::str("ping"))])).encode();
    let mut two = ping(b"t1");
    two.extend(ping(b"t2"));
    tcp.write_all(&two).unwrap();
    let split = ping(b"t3");
    tcp.write_all(&split[..5]).unwrap();
    // A gap, not a wait for a condition: the two parts should reach the
    // server in separate reads (it cannot be observed that they did).
    std::thread::sleep(Duration::from_millis(100));
    tcp.write_all(&split[5..]).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.iter().filter(|b| **b == b'e').count() < 3 * 2 {
        let n = tcp.read(&mut buf).expect("TCP replies");
        assert!(n > 0, "connection closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let mut cookies = Vec::new();
    let mut rest = &got[..];
    while !rest.is_empty() {
        let (m, used) = Message::decode_prefix(rest).expect("reply");
        assert_eq!(m.body.get("result").and_then(Value::as_str), Some("pong"));
        cookies.push(String::from_utf8(m.cookie).unwrap());
        rest = &rest[used..];
    }
    assert_eq!(cookies, ["t1", "t2", "t3"]);
}

/// A comparison case: name, extra SDP lines, extra NG keys.
type Case = (&'static str, &'static str, Vec<(&'static str, Value)>);

/// The same offer and answer through rtpengine and through Tollgate: the SDP
/// each returns must agree in everything but the chosen ports, with one
/// known difference: rtpengine runs ICE, so it answers an ICE-capable
/// offerer with candidates of its own; Tollgate does not run ICE and answers
/// without, which makes the offerer use the c=/m= address (RFC 8445 5.1.1.3
/// fallback). ICE is therefore compared on the offer side only.
#[test]
fn sdp_matches_rtpengine() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgeq");
    let tg_ng: SocketAddr = "127.0.0.1:22522".parse().unwrap();
    let re_ng: SocketAddr = "127.0.0.1:22622".parse().unwrap();
    let _tg = start(&dir, "127.0.0.1:22522", (34000, 34999));
    let re_dir = TempDir::new("tgre");
    let _re = peers::rtpengine(&re_dir.0, re_ng, (35000, 35999));

    let cases: [Case; 4] = [
        ("plain", "", vec![]),
        ("rtcp-mux offered and accepted", "a=rtcp-mux\r\n", vec![]),
        ("ICE removed", "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\na=candidate:1 1 UDP 2130706431 127.0.0.1 7000 typ host\r\n", vec![("ICE", Value::str("remove"))]),
        ("codec stripped", "", vec![("codec", Value::dict([("strip", Value::List(vec![Value::str("PCMA")]))]))]),
    ];
    for (i, (name, extra, flags)) in cases.into_iter().enumerate() {
        let offer_sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n{extra}");
        let answer_sdp = format!("v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{}", if extra.contains("rtcp-mux") { "a=rtcp-mux\r\n" } else { "" });
        let mut outs = Vec::new();
        for ng in [re_ng, tg_ng] {
            let mut c = peers::ng_client(None, ng);
            let call = format!("eq-{i}");
            let mut o: Vec<(&str, Value)> = vec![
                ("call-id", Value::str(&call)),
                ("from-tag", Value::str("ft")),
                ("sdp", Value::str(&offer_sdp)),
                (
                    "replace",
                    Value::List(vec![Value::str("origin"), Value::str("session-connection")]),
                ),
            ];
            o.extend(flags.clone());
            let off = c
                .command("offer", o)
                .unwrap_or_else(|e| panic!("{name}: offer to {ng}: {e}"));
            let ans = c
                .command(
                    "answer",
                    [
                        ("call-id", Value::str(&call)),
                        ("from-tag", Value::str("ft")),
                        ("to-tag", Value::str("tt")),
                        ("sdp", Value::str(&answer_sdp)),
                    ],
                )
                .unwrap_or_else(|e| panic!("{name}: answer to {ng}: {e}"));
            c.command("delete", [("call-id", Value::str(&call))])
                .expect("delete");
            let shape = |v: &Value| {
                let s = Sdp::parse(v.get("sdp").and_then(Value::as_str).expect("sdp"))
                    .expect("reply SDP parses");
                let m = &s.media[0];
                let rtcp: Vec<String> = m.attrs("rtcp").map(str::to_string).collect();
                (
                    s.connection(0),
                    s.origin_addr().map(str::to_string),
                    m.proto().to_string(),
                    m.formats(),
                    m.has_attr("rtcp-mux"),
                    // The a=rtcp port relative to the m= port (+1, or equal under mux).
                    rtcp.first()
                        .and_then(|r| r.split(' ').next()?.parse::<i32>().ok())
                        .map(|p| p - m.port() as i32),
                    m.has_attr("candidate") || m.has_attr("ice-ufrag"),
                    m.direction().to_string(),
                )
            };
            let mut ans_shape = shape(&ans);
            ans_shape.6 = false;
            outs.push((shape(&off), ans_shape));
        }
        assert_eq!(
            outs[1], outs[0],
            "{name}: Tollgate (left) differs from rtpengine (right)"
        );
    }
}

/// `tollgate run` restarts a data plane that died, and the control plane
/// installs the calls' flows into the new one: media flows again.
#[test]
fn run_restarts_a_dead_data_plane_and_restores_flows() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgsup");
    let ng: SocketAddr = "127.0.0.1:22822".parse().unwrap();
    let tg = start(&dir, "127.0.0.1:22822", (38000, 38099));
    let mut c = peers::ng_client(None, ng);
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    }
    let sdp = |port: u16| {
        format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
    };
    let port_of = |v: &Value| {
        Sdp::parse(v.get("sdp").and_then(Value::as_str).unwrap())
            .unwrap()
            .media[0]
            .port()
    };
    let off = c
        .command(
            "offer",
            [
                ("call-id", Value::str("sup")),
                ("from-tag", Value::str("a")),
                ("sdp", Value::str(&sdp(a.local_addr().unwrap().port()))),
            ],
        )
        .unwrap();
    let ans = c
        .command(
            "answer",
            [
                ("call-id", Value::str("sup")),
                ("from-tag", Value::str("a")),
                ("to-tag", Value::str("b")),
                ("sdp", Value::str(&sdp(b.local_addr().unwrap().port()))),
            ],
        )
        .unwrap();
    let to_relay_a: SocketAddr = format!("127.0.0.1:{}", port_of(&ans)).parse().unwrap();
    let _ = port_of(&off);
    let relayed = |n: u8| {
        a.send_to(&[0x80, 0, 0, n, 0, 0, 0, 0, 0, 0, 0, 1], to_relay_a)
            .unwrap();
        let mut buf = [0u8; 64];
        b.recv_from(&mut buf)
            .map(|(len, _)| len == 12 && buf[3] == n)
            .unwrap_or(false)
    };
    assert!(relayed(1), "media flows before the restart");

    // Kill the data plane (the child of `tollgate run`) outright.
    let run_pid = tg.child.id();
    let kids = std::fs::read_to_string(format!("/proc/{run_pid}/task/{run_pid}/children")).unwrap();
    let dp_pid: i32 = kids
        .split_whitespace()
        .next()
        .expect("a data-plane child")
        .parse()
        .unwrap();
    // SAFETY: killing the child of our own child.
    unsafe { libc::kill(dp_pid, libc::SIGKILL) };
    // The supervisor starts a new one; the next NG request makes the control
    // plane reconnect, see a new instance and install the flows again.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut back = false;
    while std::time::Instant::now() < deadline && !back {
        std::thread::sleep(Duration::from_millis(300));
        let _ = c.command("query", [("call-id", Value::str("sup"))]);
        back = relayed(2);
    }
    assert!(
        back,
        "media flows again after the data plane was restarted:\n{}",
        tg.log_text()
    );
    assert!(
        tg.log_text()
            .contains("the data plane restarted; opening recordings and installing flows again"),
        "{}",
        tg.log_text()
    );
}
