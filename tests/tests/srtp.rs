//! SDES-SRTP against an independent implementation, libsrtp 2.5 (Debian's
//! libsrtp2, `tollgate_tests::libsrtp`): Tollgate's SRTP contexts agree
//! with it packet for packet in both directions for every suite, RTP and
//! RTCP, across a sequence-number wrap; SRTP through a real data plane
//! (socket backend, and XDP whose pipeline flows go to AF_XDP workers)
//! comes out as the RTP that was sent, byte for byte, and the reverse; a
//! real `tollgate run` does the same for calls set up over NG; and real
//! baresips, one with SRTP mandatory, talk through the B2BUA (sox checks
//! the tone each hears).

use tollgate_dataplane::srtp::{Context, Keying, MasterKey, Suite};
use tollgate_tests::libsrtp::{Direction, Session};

fn key(suite: Suite, fill: u8) -> Vec<u8> {
    (0..suite.key_len() + suite.salt_len())
        .map(|i| (i as u8).wrapping_mul(29) ^ fill)
        .collect()
}

fn keying(suite: Suite, key: &[u8]) -> Keying {
    Keying {
        suite,
        key: MasterKey::new(key).unwrap(),
        mki: None,
        lifetime: None,
    }
}

/// RTP packet `seq` of a PCMA stream, payload varying with `seq`.
fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend(seq.to_be_bytes());
    p.extend((u32::from(seq) * 160).to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend((0..160u32).map(|i| (i as u16 ^ seq) as u8));
    p
}

/// A receiver report with one report block.
fn rtcp(ssrc: u32, n: u8) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend(ssrc.to_be_bytes());
    p.extend([n; 24]);
    p
}

fn ours_protect(c: &mut Context, plain: &[u8], rtcp: bool) -> Vec<u8> {
    let mut buf = plain.to_vec();
    let extra = if rtcp {
        c.rtcp_overhead()
    } else {
        c.rtp_overhead()
    };
    buf.resize(plain.len() + extra, 0);
    let n = if rtcp {
        c.protect_rtcp(&mut buf, plain.len())
    } else {
        c.protect_rtp(&mut buf, plain.len())
    }
    .unwrap();
    buf.truncate(n);
    buf
}

fn ours_unprotect(c: &mut Context, sealed: &[u8], rtcp: bool) -> Vec<u8> {
    let mut buf = sealed.to_vec();
    let n = if rtcp {
        c.unprotect_rtcp(&mut buf)
    } else {
        c.unprotect_rtp(&mut buf)
    }
    .unwrap_or_else(|e| {
        panic!(
            "ours refused libsrtp's packet ({} bytes, rtcp {rtcp}): {e}",
            sealed.len()
        )
    });
    buf.truncate(n);
    buf
}

/// Sequence numbers across a wrap, so the ROC is exercised both ways.
fn seqs() -> impl Iterator<Item = u16> {
    (65520..=65535).chain(0..20)
}

#[test]
fn every_suite_agrees_with_libsrtp_both_ways() {
    for suite in Suite::ALL {
        let k = key(suite, 0x3c);
        // libsrtp -> ours.
        let mut theirs = Session::new(suite, &k, Direction::Outbound);
        let mut ours = Context::new(&keying(suite, &k));
        for seq in seqs() {
            let plain = rtp(0x1234_5678, seq);
            let mut sealed = plain.clone();
            theirs.protect(&mut sealed).unwrap();
            assert_eq!(
                ours_unprotect(&mut ours, &sealed, false),
                plain,
                "{suite:?} seq {seq}"
            );
        }
        for n in 0..5 {
            let plain = rtcp(0x1234_5678, n);
            let mut sealed = plain.clone();
            theirs.protect_rtcp(&mut sealed).unwrap();
            assert_eq!(
                ours_unprotect(&mut ours, &sealed, true),
                plain,
                "{suite:?} RTCP {n}"
            );
        }
        // ours -> libsrtp, and the very bytes libsrtp would have sent.
        let mut ours = Context::new(&keying(suite, &k));
        let mut theirs_rx = Session::new(suite, &k, Direction::Inbound);
        let mut reference = Session::new(suite, &k, Direction::Outbound);
        for seq in seqs() {
            let plain = rtp(0x0bad_cafe, seq);
            let sealed = ours_protect(&mut ours, &plain, false);
            let mut want = plain.clone();
            reference.protect(&mut want).unwrap();
            assert_eq!(
                sealed, want,
                "{suite:?} seq {seq}: the same SRTP as libsrtp's"
            );
            let mut opened = sealed;
            theirs_rx
                .unprotect(&mut opened)
                .unwrap_or_else(|e| panic!("{suite:?} seq {seq}: {e:?}"));
            assert_eq!(opened, plain);
        }
        for n in 0..5 {
            let plain = rtcp(0x0bad_cafe, n);
            let mut opened = ours_protect(&mut ours, &plain, true);
            theirs_rx
                .unprotect_rtcp(&mut opened)
                .unwrap_or_else(|e| panic!("{suite:?} RTCP {n}: {e:?}"));
            assert_eq!(opened, plain, "{suite:?} RTCP {n}");
        }
    }
}

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_tests::netns::{self, Topology};
use tollgate_tests::process;
use tollgate_tests::relay::{sa, Kind, Relay, LIMIT, QUIET};
use tollgate_tests::rtp::{bind, collect};

fn put(
    r: &Relay,
    local: SocketAddr,
    source: SocketAddr,
    destination: SocketAddr,
    stages: Vec<StageSpec>,
) {
    r.put(Flow {
        stages,
        ..process::flow(
            &local.to_string(),
            &source.to_string(),
            &destination.to_string(),
        )
    });
}

/// Sends each of `packets` from `from` to `to`, 1 ms apart, and returns
/// what `at` received.
fn exchange(
    from: &UdpSocket,
    to: SocketAddr,
    packets: &[Vec<u8>],
    at: &UdpSocket,
    want: usize,
) -> Vec<Vec<u8>> {
    for p in packets {
        from.send_to(p, to).expect("send");
        std::thread::sleep(Duration::from_millis(1));
    }
    collect(at, want, QUIET, LIMIT)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// The transcrypt stages in a real data plane: the caller speaks SRTP
/// (libsrtp encrypts, key KA), the callee plain RTP. Caller -> callee is
/// decrypted; callee -> caller encrypted with the relay's key KR (libsrtp
/// decrypts); and a third flow re-keys SRTP from KA to KB (SRTP on both
/// legs, different keys). RTP across a sequence wrap and SRTCP, compared
/// byte for byte; a replayed packet and a forged one are dropped.
fn transcrypts_through_the_data_plane(kind: Kind, suite: Suite) {
    let r = Relay::on(Topology::in_namespaces("tgs"), kind, "");
    let a = netns::v4();
    let (ka, kr, kb) = (key(suite, 1), key(suite, 2), key(suite, 3));
    let (caller_at, callee_at, callee2_at) =
        (sa(a.caller, 5000), sa(a.callee, 4000), sa(a.callee, 4002));
    let (in_a, in_b, in_b2) = (
        sa(a.relay_a, 30000),
        sa(a.relay_b, 30002),
        sa(a.relay_a, 30004),
    );
    put(
        &r,
        in_a,
        sa(a.relay_b, 30002),
        callee_at,
        vec![StageSpec::SrtpDecrypt(keying(suite, &ka))],
    );
    put(
        &r,
        in_b,
        in_a,
        caller_at,
        vec![StageSpec::SrtpEncrypt(keying(suite, &kr))],
    );
    let rekey = vec![
        StageSpec::SrtpDecrypt(keying(suite, &ka)),
        StageSpec::SrtpEncrypt(keying(suite, &kb)),
    ];
    put(&r, in_b2, sa(a.relay_b, 30006), callee2_at, rekey);
    let caller = bind(&r.topo.caller, caller_at);
    let callee = bind(&r.topo.callee, callee_at);
    let callee2 = bind(&r.topo.callee, callee2_at);

    let plain: Vec<Vec<u8>> = seqs()
        .map(|s| rtp(0xca11e4, s))
        .chain((0..4).map(|n| rtcp(0xca11e4, n)))
        .collect();
    let mut sealer = Session::new(suite, &ka, Direction::Outbound);
    let sealed = libsrtp_all(&mut sealer, plain.clone(), true);
    let mut forged = sealed[3].clone();
    forged[20] ^= 0x40;
    let mut sent = sealed.clone();
    sent.push(sealed[5].clone()); // a replay
    sent.push(forged);
    let got = exchange(&caller, in_a, &sent, &callee, plain.len() + 2);
    assert_eq!(
        got,
        plain,
        "{suite:?}: the callee hears the caller's RTP and RTCP as sent; {}",
        r.counters()
    );
    assert_eq!(
        r.pipeline("dropped_stage"),
        2,
        "{suite:?}: the replay and the forgery; {}",
        r.workers()
    );

    // Callee -> caller: encrypted by the relay with KR.
    let got = exchange(&callee, in_b, &plain, &caller, plain.len());
    let mut opener = Session::new(suite, &kr, Direction::Inbound);
    let opened = libsrtp_all(&mut opener, got, false);
    assert_eq!(
        opened, plain,
        "{suite:?}: the caller decrypts what the callee sent"
    );

    // SRTP in with KA, SRTP out with KB.
    let got = exchange(&caller, in_b2, &sealed, &callee2, plain.len());
    let mut opener = Session::new(suite, &kb, Direction::Inbound);
    let opened = libsrtp_all(&mut opener, got, false);
    assert_eq!(opened, plain, "{suite:?}: re-keyed from KA to KB");
}

#[test]
fn socket_transcrypts_aes_cm_and_gcm() {
    transcrypts_through_the_data_plane(Kind::Socket, Suite::AesCm128HmacSha1_80);
    transcrypts_through_the_data_plane(Kind::Socket, Suite::AeadAes256Gcm);
}

#[test]
fn afxdp_transcrypts_aes_cm_and_gcm() {
    transcrypts_through_the_data_plane(Kind::Afxdp, Suite::AesCm128HmacSha1_32);
    transcrypts_through_the_data_plane(Kind::Afxdp, Suite::AeadAes128Gcm);
}

use tollgate_ng::client::NgClient;
use tollgate_ng::Value;
use tollgate_sip::sdes::{Crypto, KeyParam};
use tollgate_sip::sdp::Sdp;
use tollgate_tests::{peers, TempDir};

const NG: &str = "127.0.0.1:22490";

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An SDP from 127.0.0.1:`port` in `proto` with `extra` lines.
fn sdp(port: u16, proto: &str, extra: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} {proto} 8\r\na=rtpmap:8 PCMA/8000\r\n{extra}"
    )
}

fn ng_sdp(
    ng: &mut NgClient,
    command: &str,
    call: &str,
    sdp: String,
    more: Vec<(&str, Value)>,
) -> Sdp {
    let mut params = vec![
        ("call-id", Value::str(call)),
        ("from-tag", Value::str("A")),
        ("sdp", Value::str(&sdp)),
    ];
    if command == "answer" {
        params.push(("to-tag", Value::str("B")));
    }
    params.extend(more);
    let r = ng
        .command(command, params)
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    Sdp::parse(r.get("sdp").and_then(Value::as_str).expect("an SDP"))
        .expect("the relay's SDP parses")
}

/// Protects (`seal`) or unprotects each packet with libsrtp, RTP or RTCP by
/// its packet type.
fn libsrtp_all(s: &mut Session, packets: Vec<Vec<u8>>, seal: bool) -> Vec<Vec<u8>> {
    packets
        .into_iter()
        .map(|mut p| {
            let rtcp = p[1] == 201;
            match (seal, rtcp) {
                (true, false) => s.protect(&mut p),
                (true, true) => s.protect_rtcp(&mut p),
                (false, false) => s.unprotect(&mut p),
                (false, true) => s.unprotect_rtcp(&mut p),
            }
            .unwrap_or_else(|e| panic!("libsrtp: {e:?}"));
            p
        })
        .collect()
}

/// The two sockets (RTP, RTCP on port + 1) of one end of a call.
type Ends<'a> = [&'a UdpSocket; 2];

/// RTP to `port`, RTCP to `port` + 1, from the matching sockets of `from`;
/// what arrives at `at`'s two sockets.
fn both_ports(from: Ends, port: u16, packets: &[Vec<u8>], at: Ends) -> Vec<Vec<u8>> {
    let (rtp, rtcp): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
        packets.iter().cloned().partition(|p| p[1] != 201);
    let mut got = exchange(from[0], loopback(port), &rtp, at[0], rtp.len());
    got.extend(exchange(
        from[1],
        loopback(port + 1),
        &rtcp,
        at[1],
        rtcp.len(),
    ));
    got
}

/// One transcrypted call, checked both ways: `plain` (its relay port
/// `plain.1`) sends `packets` and the SRTP end `srtp` receives them
/// encrypted with `relay_key`; `srtp` sends them encrypted with `peer_key`
/// to its relay port `srtp.1` and `plain` receives them as sent.
fn check_call(
    plain: (Ends, u16),
    srtp: (Ends, u16),
    suite: Suite,
    relay_key: &[u8],
    peer_key: &[u8],
    packets: &[Vec<u8>],
) {
    let got = both_ports(plain.0, plain.1, packets, srtp.0);
    let mut open = Session::new(suite, relay_key, Direction::Inbound);
    assert_eq!(
        libsrtp_all(&mut open, got, false),
        packets,
        "{suite:?}: the plain end's media reaches the SRTP end encrypted"
    );
    let mut seal = Session::new(suite, peer_key, Direction::Outbound);
    let sealed = libsrtp_all(&mut seal, packets.to_vec(), true);
    let got = both_ports(srtp.0, srtp.1, &sealed, plain.0);
    assert_eq!(
        got, packets,
        "{suite:?}: the SRTP end's media reaches the plain end decrypted"
    );
}

fn crypto_lines(s: &Sdp) -> Vec<Crypto> {
    s.media[0]
        .attrs("crypto")
        .map(|v| Crypto::parse(v).unwrap())
        .collect()
}

fn line(tag: u32, suite: Suite, key_salt: &[u8], lifetime: Option<u64>) -> String {
    let key = KeyParam {
        key_salt: key_salt.to_vec(),
        lifetime,
        mki: None,
    };
    format!(
        "a=crypto:{}\r\n",
        Crypto::new(tag, suite.name(), key, false)
    )
}

/// A real `tollgate run` driven over NG: a plain caller and an SDES callee
/// (the relay offers SRTP, the callee picks AEAD_AES_128_GCM), then an
/// SDES caller (AES_CM_128_HMAC_SHA1_80, a key lifetime) and a plain callee;
/// RTP and RTCP (on port + 1) both ways, the SRTP end done by libsrtp with
/// the keys from the SDP, compared byte for byte with what was sent.
#[test]
fn ng_calls_transcrypt_between_sdes_and_plain_rtp() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgsrtp");
    let (_tg, _) =
        peers::tollgate_loopback(&dir.0, NG, (53000, 53099), &["--delete-delay", "0"], "");
    let mut ng = NgClient::new(NG.parse().unwrap()).expect("NG client");
    let lo = |port| UdpSocket::bind(loopback(port)).unwrap_or_else(|e| panic!("bind {port}: {e}"));
    let (a, b) = ([lo(53900), lo(53901)], [lo(53910), lo(53911)]);
    let (a, b) = ([&a[0], &a[1]], [&b[0], &b[1]]);
    let packets: Vec<Vec<u8>> = (100..130)
        .map(|s| rtp(0xa11ce, s))
        .chain((0..3).map(|n| rtcp(0xa11ce, n)))
        .collect();

    // Plain A, SDES B: B picks the relay's AEAD_AES_128_GCM line.
    let savp = vec![("transport-protocol", Value::str("RTP/SAVP"))];
    let to_b = ng_sdp(&mut ng, "offer", "srtp1", sdp(53900, "RTP/AVP", ""), savp);
    assert_eq!(to_b.media[0].proto(), "RTP/SAVP");
    let gcm = Suite::AeadAes128Gcm;
    let ours = crypto_lines(&to_b)
        .into_iter()
        .find(|c| c.suite == gcm.name())
        .expect("the relay offers AEAD_AES_128_GCM");
    let b_key = key(gcm, 0x5b);
    let to_a = ng_sdp(
        &mut ng,
        "answer",
        "srtp1",
        sdp(53910, "RTP/SAVP", &line(ours.tag, gcm, &b_key, None)),
        vec![],
    );
    assert_eq!(to_a.media[0].proto(), "RTP/AVP");
    assert!(crypto_lines(&to_a).is_empty());
    let ports = (to_a.media[0].port(), to_b.media[0].port());
    check_call(
        (a, ports.0),
        (b, ports.1),
        gcm,
        &ours.keys[0].key_salt,
        &b_key,
        &packets,
    );
    ng.command("delete", [("call-id", Value::str("srtp1"))])
        .unwrap();

    // SDES A (with a key lifetime), plain B: the relay answers A's tag 3.
    let cm = Suite::AesCm128HmacSha1_80;
    let a_key = key(cm, 0xa5);
    let avp = vec![("transport-protocol", Value::str("RTP/AVP"))];
    let to_b = ng_sdp(
        &mut ng,
        "offer",
        "srtp2",
        sdp(53900, "RTP/SAVP", &line(3, cm, &a_key, Some(1 << 31))),
        avp,
    );
    assert_eq!(to_b.media[0].proto(), "RTP/AVP");
    let to_a = ng_sdp(
        &mut ng,
        "answer",
        "srtp2",
        sdp(53910, "RTP/AVP", ""),
        vec![],
    );
    assert_eq!(to_a.media[0].proto(), "RTP/SAVP");
    let lines = crypto_lines(&to_a);
    let [relay] = &lines[..] else {
        panic!("one crypto line: {lines:?}")
    };
    assert_eq!((relay.tag, relay.suite.as_str()), (3, cm.name()));
    let ports = (to_a.media[0].port(), to_b.media[0].port());
    check_call(
        (b, ports.1),
        (a, ports.0),
        cm,
        &relay.keys[0].key_salt,
        &a_key,
        &packets,
    );
    let q = ng
        .command("query", [("call-id", Value::str("srtp2"))])
        .unwrap();
    let stream = q
        .get("tags")
        .and_then(|t| t.get("A"))
        .and_then(|t| t.get("medias"))
        .and_then(Value::as_list)
        .and_then(|m| m[0].get("streams"))
        .and_then(Value::as_list)
        .map(|s| s[0].clone());
    let suite = stream
        .as_ref()
        .and_then(|s| s.get("crypto suite"))
        .and_then(Value::as_str);
    assert_eq!(suite, Some(cm.name()), "{q:?}");
}

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// A baresip user agent's config directory under `dir`: SIP on `sip`, RTP
/// from `rtp`, a 440 Hz tone as its microphone (`tone`), what it hears
/// dumped as WAV by `sndfile`, and one account (`account` parameters:
/// `mediaenc=srtp-mand` for mandatory SDES-SRTP, auto answer for a callee).
fn baresip_dir(
    dir: &Path,
    name: &str,
    sip: u16,
    rtp: u16,
    user: &str,
    account: &str,
) -> std::path::PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let tone = dir.join("tone.wav");
    let config = format!(
        "module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule sndfile.so\n\
         module srtp.so\nmodule menu.so\nmodule account.so\nsip_listen 127.0.0.1:{sip}\n\
         rtp_ports {rtp}-{}\naudio_source aufile,{}\naudio_player aufile,/dev/null\n\
         audio_alert aufile,/dev/null\nsnd_path {}\n",
        rtp + 9,
        tone.display(),
        d.display()
    );
    std::fs::write(d.join("config"), config).unwrap();
    let acc = format!("<sip:{user}@127.0.0.1:{sip}>;regint=0;audio_codecs=PCMU{account}\n");
    std::fs::write(d.join("accounts"), acc).unwrap();
    d
}

/// Runs baresip on config `d` for `secs` (plus `dial`, a URI to call),
/// its output in `d`/baresip.log.
fn baresip(d: &Path, secs: u32, dial: Option<&str>) -> std::process::Child {
    let mut cmd = Command::new("baresip");
    cmd.arg("-f").arg(d).arg("-t").arg(secs.to_string());
    if let Some(uri) = dial {
        cmd.arg("-e").arg(format!("/dial {uri}"));
    }
    let log = std::fs::File::create(d.join("baresip.log")).unwrap();
    cmd.current_dir(d)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start baresip")
}

/// Waits (at most 30 s) for `c` to exit.
fn finish(c: &mut std::process::Child) {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if c.try_wait().expect("wait").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = c.kill();
    panic!("baresip did not stop");
}

/// sox's rough frequency and RMS amplitude of what `d`'s baresip heard.
fn heard(d: &Path) -> (f64, f64) {
    let dec = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("{} dumped no received audio", d.display()));
    let out = Command::new("sox")
        .arg(&dec)
        .args(["-n", "stat"])
        .output()
        .expect("run sox");
    let text = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("sox stat: {text}"));
        line.rsplit(' ').next().unwrap().trim().parse().unwrap()
    };
    (field("Rough   frequency"), field("RMS     amplitude"))
}

/// A call through Tollgate's B2BUA between two real baresips, one of them
/// with SDES-SRTP mandatory (`srtp_caller`: the caller, else the callee),
/// the route's `srtp` making the other leg plain or SRTP. Each end plays a
/// 440 Hz tone and must hear the other's (sox), and the SRTP end's baresip
/// must say it ran SRTP.
fn baresip_call(base: u16, srtp_caller: bool) {
    tollgate_tests::require_root();
    for tool in ["baresip", "sox"] {
        peers::require(tool);
    }
    let dir = TempDir::new("tgsrtpbs");
    let tone = dir.0.join("tone.wav");
    let sox = Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(&tone)
        .args(["synth", "4", "sine", "440", "vol", "0.5"])
        .status()
        .expect("run sox");
    assert!(sox.success(), "sox made no tone");
    // baresip takes its SIP port and the next (TLS).
    let (sip, callee_sip, caller_sip) = (base, base + 2, base + 4);
    let route = if srtp_caller { "off" } else { "sdes" };
    let relay = 53200 + (base - 50930) * 10;
    let sections = format!(
        "[dataplane]\nbackend = \"socket\"\ncontrol_socket = \"{}\"\n\
         [sip]\nlisten = \"127.0.0.1:{sip}\"\n\
         [[sip.routes]]\nmatch = \"6000\"\ntarget = \"sip:6000@127.0.0.1:{callee_sip}\"\nsrtp = \"{route}\"\n",
        dir.0.join("dp.sock").display()
    );
    let ng = format!("127.0.0.1:{}", 22491 + (base - 50930) / 10);
    let (min, max) = (relay.to_string(), (relay + 99).to_string());
    let args = [
        "--interface",
        "127.0.0.1",
        "--listen-ng",
        &ng,
        "--port-min",
        &min,
        "--port-max",
        &max,
    ];
    let _tg = peers::tollgate_run(None, &dir.0, &sections, &args, ng.parse().unwrap());
    let mand = ";mediaenc=srtp-mand";
    let rtp = 53900 + (base - 50930) * 4;
    let (caller_enc, callee_enc) = if srtp_caller { (mand, "") } else { ("", mand) };
    let callee_dir = baresip_dir(
        &dir.0,
        "callee",
        callee_sip,
        rtp + 20,
        "6000",
        &format!(";answermode=auto{callee_enc}"),
    );
    let caller_dir = baresip_dir(&dir.0, "caller", caller_sip, rtp + 40, "alice", caller_enc);
    let mut callee = baresip(&callee_dir, 12, None);
    std::thread::sleep(Duration::from_millis(500));
    let mut caller = baresip(&caller_dir, 8, Some(&format!("sip:6000@127.0.0.1:{sip}")));
    finish(&mut caller);
    finish(&mut callee);
    let srtp_dir = if srtp_caller {
        &caller_dir
    } else {
        &callee_dir
    };
    let log = std::fs::read_to_string(srtp_dir.join("baresip.log")).unwrap();
    assert!(
        log.contains("SRTP is Enabled (cryptosuite="),
        "the SRTP end ran no SRTP:\n{log}"
    );
    for d in [&caller_dir, &callee_dir] {
        let (freq, rms) = heard(d);
        assert!(
            (420.0..=460.0).contains(&freq) && rms > 0.2,
            "{}: heard {freq} Hz at RMS {rms}",
            d.display()
        );
    }
}

#[test]
fn baresip_with_mandatory_srtp_calls_a_plain_baresip_through_the_b2bua() {
    baresip_call(50930, true);
}

#[test]
fn a_plain_baresip_calls_one_with_mandatory_srtp_through_the_b2bua() {
    baresip_call(50940, false);
}
