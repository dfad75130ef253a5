//! Transcoding end to end through a real `tollgate run` (socket backend on
//! loopback): an NG offer from a party that speaks only Opus (then only
//! G.722, then only G.729) with `codec-transcode-PCMU`, answered by a party
//! that speaks only PCMU. Each party is a UDP socket of the test sending
//! 1 s of a tone in its own codec as 20 ms RTP packets (1 kHz from the
//! offerer, 800 Hz from the answerer), and each decodes what the relay
//! sends it with its own codec: the tone must arrive at its frequency (the
//! strongest of a scan from 300 to 3,400 Hz) and at its level within 3 dB,
//! in the payload type its SDP named. The call's CDR names each leg's codec
//! and says both were transcoded. A second node call repacketises: PCMU in
//! 20 ms packets to PCMA in 30 ms (NG `ptime`), and back, with an RFC 4733
//! digit from the caller arriving in the callee's telephone-event payload
//! type.

use std::f64::consts::PI;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use tollgate_codec::{Codec, Decoder, Encoder};
use tollgate_ng::Value;
use tollgate_tests::{peers, TempDir};

/// Each test's node: its NG address and relay ports.
const NODES: [(&str, (u16, u16)); 3] = [
    ("127.0.0.1:22600", (37100, 37499)),
    ("127.0.0.1:22601", (37500, 37799)),
    ("127.0.0.1:22602", (37800, 37899)),
];
/// rtpengine's, beside node 2 in the benchmark.
const RTPENGINE: (&str, (u16, u16)) = ("127.0.0.1:22603", (37900, 37999));
const LEVEL_DBFS: f64 = -10.0;

/// A party: its socket, codec, payload types and the tone it sends.
struct Party {
    sock: UdpSocket,
    codec: Codec,
    pt: u8,
    ptime_ms: u32,
    tone_hz: f64,
}

/// What a party received: its audio decoded, and each packet's (payload
/// type, timestamp, payload length).
struct Heard {
    pcm: Vec<i16>,
    packets: Vec<(u8, u32, usize)>,
}

impl Party {
    fn new(codec: Codec, pt: u8, ptime_ms: u32, tone_hz: f64) -> Party {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Party {
            sock,
            codec,
            pt,
            ptime_ms,
            tone_hz,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Its SDP: its one codec (and telephone-event at its clock).
    fn sdp(&self) -> String {
        let a = self.addr();
        let clock = self.codec.rtp_clock_rate();
        let map = match self.codec {
            Codec::Opus => "opus/48000/2".to_string(),
            c => format!("{}/{clock}", c.encoding()),
        };
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {map}\r\n\
             a=rtpmap:101 telephone-event/{clock}\r\na=fmtp:101 0-15\r\na=sendrecv\r\n\
             a=ptime:{ptime}\r\n",
            ip = a.ip(),
            port = a.port(),
            pt = self.pt,
            ptime = self.ptime_ms
        )
    }

    /// `seconds` of its tone in packets of its ptime, coded in its codec.
    fn packets(&self, seconds: u32) -> Vec<Vec<u8>> {
        let rate = self.codec.sample_rate();
        let per = (rate * self.ptime_ms / 1000) as usize;
        let amp = 32767.0 * 10f64.powf(LEVEL_DBFS / 20.0);
        let mut enc = Encoder::new(self.codec).unwrap();
        let ticks = self.codec.rtp_clock_rate() * self.ptime_ms / 1000;
        (0..(seconds * 1000 / self.ptime_ms) as usize)
            .map(|i| {
                let pcm: Vec<i16> = (i * per..(i + 1) * per)
                    .map(|n| {
                        (amp * (2.0 * PI * self.tone_hz * n as f64 / f64::from(rate)).sin()) as i16
                    })
                    .collect();
                let mut p = vec![0x80, self.pt, 0, 0, 0, 0, 0, 0, 0, 0, 0x5a, 0xa5];
                p[2..4].copy_from_slice(&(i as u16).to_be_bytes());
                p[4..8].copy_from_slice(&(i as u32 * ticks).to_be_bytes());
                let mut body = vec![0u8; self.codec.max_payload(self.ptime_ms)];
                let n = enc.encode(&pcm, &mut body).unwrap();
                p.extend_from_slice(&body[..n]);
                p
            })
            .collect()
    }

    /// Everything the relay sent it: audio (in its payload type) decoded
    /// at its codec's rate, telephone-events (101) kept aside.
    fn heard(&self) -> Heard {
        let mut dec = Decoder::new(self.codec).unwrap();
        let mut buf = [0u8; 2048];
        let mut frame = vec![0i16; 5760];
        let mut heard = Heard {
            pcm: Vec::new(),
            packets: Vec::new(),
        };
        while let Ok(n) = self.sock.recv(&mut buf) {
            assert!(n > 12, "{:?} got a {n}-byte datagram", self.codec);
            let pt = buf[1] & 0x7f;
            let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            heard.packets.push((pt, ts, n - 12));
            if pt == 101 {
                continue;
            }
            assert_eq!(pt, self.pt, "{:?}: payload type", self.codec);
            let m = dec.decode(&buf[12..n], &mut frame).unwrap();
            heard.pcm.extend_from_slice(&frame[..m]);
        }
        heard
    }
}

/// Level (dBFS) of `pcm` at `hz` over its second half, by Goertzel.
fn level_at(pcm: &[i16], rate: u32, hz: f64) -> f64 {
    let tail = &pcm[pcm.len() / 2..];
    let c = 2.0 * (2.0 * PI * hz / f64::from(rate)).cos();
    let (s1, s2) = tail.iter().fold((0.0, 0.0), |(s1, s2), &x| {
        (f64::from(x) / 32768.0 + c * s1 - s2, s1)
    });
    let amplitude = 2.0 * (s1 * s1 + s2 * s2 - c * s1 * s2).sqrt() / tail.len() as f64;
    20.0 * amplitude.max(1e-9).log10()
}

/// `got` carries `want`'s tone: the strongest frequency of a 50 Hz scan is
/// the tone's, at its level within 3 dB.
fn check_tone(who: &str, got: &[i16], rate: u32, want_hz: f64) {
    let seconds = got.len() as f64 / f64::from(rate);
    assert!(seconds > 0.6, "{who} heard only {seconds:.2} s");
    let (best, level) = (6..=68)
        .map(|k| f64::from(k) * 50.0)
        .map(|hz| (hz, level_at(got, rate, hz)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    println!("{who}: {seconds:.2} s, strongest at {best} Hz, {level:.2} dBFS");
    assert_eq!(best, want_hz, "{who}: the strongest frequency");
    assert!(
        (level - LEVEL_DBFS).abs() <= 3.0,
        "{who}: {level:.2} dBFS, sent at {LEVEL_DBFS}"
    );
}

fn ng_request(c: &mut tollgate_ng::client::NgClient, cmd: &str, keys: Vec<(&str, Value)>) -> Value {
    let r = c.command(cmd, keys).expect("NG reply");
    assert_eq!(
        r.get("result").and_then(Value::as_str),
        Some("ok"),
        "{cmd}: {r:?}"
    );
    r
}

/// Offers `a`'s SDP (with `more`) and answers with `b`'s: where each
/// sends its media.
fn connect(
    ng: &mut tollgate_ng::client::NgClient,
    call_id: &str,
    (a, b): (&Party, &Party),
    more: Vec<(&'static str, Value)>,
) -> (SocketAddr, SocketAddr) {
    let s = Value::str;
    let mut keys = vec![
        ("call-id", s(call_id)),
        ("from-tag", s("A")),
        ("sdp", s(&a.sdp())),
    ];
    keys.extend(more);
    let offer = ng_request(ng, "offer", keys);
    let to_b = offer.get("sdp").and_then(Value::as_str).unwrap();
    assert!(
        to_b.contains(&format!("a=rtpmap:{} ", b.pt)),
        "B's codec offered to B: {to_b}"
    );
    let answer = ng_request(
        ng,
        "answer",
        vec![
            ("call-id", s(call_id)),
            ("from-tag", s("A")),
            ("to-tag", s("B")),
            ("sdp", s(&b.sdp())),
        ],
    );
    let to_a = answer.get("sdp").and_then(Value::as_str).unwrap();
    assert!(
        to_a.contains(&format!("RTP/AVP {} 101", a.pt)),
        "A answered in its own codec: {to_a}"
    );
    (peers::relay_media(&answer), peers::relay_media(&offer))
}

/// One call from `a` (offering with `more`) to `b`: both send a second of
/// their tone at their own ptime (and `a` a digit, when `digit`), each
/// checks the other's tone in what it heard; what they heard.
fn call(
    ng: &mut tollgate_ng::client::NgClient,
    call_id: &str,
    (a, b): (&Party, &Party),
    more: Vec<(&'static str, Value)>,
    digit: bool,
) -> (Heard, Heard) {
    let s = Value::str;
    let (a_to, b_to) = connect(ng, call_id, (a, b), more);
    let mut queue: Vec<(u64, &UdpSocket, SocketAddr, Vec<u8>)> = Vec::new();
    for (p, to) in [(a, a_to), (b, b_to)] {
        for (i, pkt) in p.packets(1).into_iter().enumerate() {
            queue.push((i as u64 * u64::from(p.ptime_ms), &p.sock, to, pkt));
        }
    }
    if digit {
        // Digit 5 at 0.5 s: start and end packets, 400 ticks (50 ms).
        let ts = (a.codec.rtp_clock_rate() / 2).to_be_bytes();
        for (at, e) in [(500, 0u8), (520, 0x80)] {
            let mut p = vec![0x80, 101, 0, 200 + e / 0x80, ts[0], ts[1], ts[2], ts[3]];
            p.extend_from_slice(&[0, 0, 0x5a, 0xa5, 5, e | 10, 0x01, 0x90]);
            queue.push((at, &a.sock, a_to, p));
        }
    }
    queue.sort_by_key(|q| q.0);
    let start = Instant::now();
    for (at, sock, to, pkt) in queue {
        let due = start + Duration::from_millis(at);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        sock.send_to(&pkt, to).unwrap();
    }
    let (to_b, to_a) = (b.heard(), a.heard());
    let name = |x: &Party, y: &Party| {
        format!(
            "{:?}/{} to {:?}/{}",
            x.codec, x.ptime_ms, y.codec, y.ptime_ms
        )
    };
    check_tone(&name(a, b), &to_b.pcm, b.codec.sample_rate(), a.tone_hz);
    check_tone(&name(b, a), &to_a.pcm, a.codec.sample_rate(), b.tone_hz);
    let q = ng_request(ng, "query", vec![("call-id", s(call_id))]);
    assert!(format!("{q:?}").contains("transcoding"), "{q:?}");
    ng_request(
        ng,
        "delete",
        vec![("call-id", s(call_id)), ("from-tag", s("A"))],
    );
    (to_b, to_a)
}

/// Node `n` of [`NODES`] on loopback, its CDRs in `cdr.jsonl` in `dir`, and
/// an NG client for it.
fn node(dir: &TempDir, n: usize) -> (peers::Proc, tollgate_ng::client::NgClient) {
    let (ng, ports) = NODES[n];
    let sections = format!(
        "[cdr]\nspool_dir = \"{0}/spool\"\nsinks = [{{ kind = \"jsonl\", path = \"{0}/cdr.jsonl\" }}]\n",
        dir.0.display()
    );
    let tg = peers::tollgate_loopback(&dir.0, ng, ports, &["--delete-delay", "0"], &sections).0;
    (tg, peers::ng_client(None, ng.parse().unwrap()))
}

#[test]
fn opus_g722_and_g729_callers_reach_a_pcmu_callee_both_ways() {
    let dir = TempDir::new("tgtranscode");
    let (_tg, mut ng) = node(&dir, 0);
    let calls = [
        ("tc-opus", Codec::Opus, 96, "opus/48000/2"),
        ("tc-g722", Codec::G722, 9, "G722/8000"),
        ("tc-g729", Codec::G729, 18, "G729/8000"),
    ];
    let flags = || {
        vec![(
            "flags",
            Value::List(vec![Value::str("codec-transcode-PCMU")]),
        )]
    };
    for (id, codec, pt, _) in calls {
        let (a, b) = (
            Party::new(codec, pt, 20, 1000.0),
            Party::new(Codec::Pcmu, 0, 20, 800.0),
        );
        call(&mut ng, id, (&a, &b), flags(), false);
    }
    let path = dir.0.join("cdr.jsonl");
    let mut ended = Vec::new();
    let found = tollgate_tests::wait_until(Duration::from_secs(10), || {
        ended = tollgate_tests::cdrs::jsonl(&path)
            .into_iter()
            .filter(|r| r["event"] == "call.ended")
            .collect();
        ended.len() == calls.len()
    });
    assert!(found, "one CDR per call: {ended:?}");
    for (id, _, _, a_codec) in calls {
        let cdr = ended
            .iter()
            .find(|r| r["call_id"] == id)
            .unwrap_or_else(|| panic!("no CDR for {id}: {ended:?}"));
        let legs = cdr["legs"].as_array().expect("legs");
        let codecs: Vec<&str> = legs.iter().filter_map(|l| l["codec"].as_str()).collect();
        assert_eq!(codecs, [a_codec, "PCMU/8000"], "{id}: {cdr}");
        assert!(
            legs.iter().all(|l| l["transcoded"] == true),
            "{id}: both legs transcoded: {cdr}"
        );
    }
}

#[test]
fn twenty_ms_pcmu_and_thirty_ms_pcma_repacketised_with_a_digit_mapped() {
    let dir = TempDir::new("tgptime");
    let (_tg, mut ng) = node(&dir, 1);
    let a = Party::new(Codec::Pcmu, 0, 20, 1000.0);
    let b = Party::new(Codec::Pcma, 8, 30, 800.0);
    let more = vec![
        (
            "codec",
            Value::dict([("transcode", Value::List(vec![Value::str("PCMA")]))]),
        ),
        ("ptime", Value::Int(30)),
    ];
    let (to_b, to_a) = call(&mut ng, "tc-ptime", (&a, &b), more, true);
    let audio = |h: &Heard, pt: u8| -> Vec<(u32, usize)> {
        h.packets
            .iter()
            .filter(|p| p.0 == pt)
            .map(|p| (p.1, p.2))
            .collect()
    };
    let (b_audio, a_audio) = (audio(&to_b, 8), audio(&to_a, 0));
    assert!(
        b_audio.iter().all(|p| p.1 == 240),
        "30 ms PCMA to B: {b_audio:?}"
    );
    assert!(
        a_audio.iter().all(|p| p.1 == 160),
        "20 ms PCMU to A: {a_audio:?}"
    );
    assert!(
        a_audio.len() >= 45,
        "the 30 ms packets' surplus reached A too: {}",
        a_audio.len()
    );
    for (h, step) in [(&b_audio, 240), (&a_audio, 160)] {
        let steps: Vec<u32> = h.windows(2).map(|w| w[1].0.wrapping_sub(w[0].0)).collect();
        assert!(
            steps.iter().all(|&d| d == step),
            "timestamps step {step}: {steps:?}"
        );
    }
    let events: Vec<_> = to_b.packets.iter().filter(|p| p.0 == 101).collect();
    assert_eq!(
        events.len(),
        2,
        "the digit's two packets reached B: {:?}",
        to_b.packets
    );
    assert!(events.iter().all(|e| e.1 == 4000 && e.2 == 4), "{events:?}");
}

/// Not a test: what transcoded calls cost the relay's CPU, Tollgate (socket
/// backend) beside rtpengine in the same run: `CALLS` calls of Opus (then
/// G.722) to PCMU set up over NG on each, `SECONDS` s of 20 ms packets both
/// ways from this process, the relay's CPU time (every process of it) over
/// the run, and the packets that came out. Figures in docs/benchmarks.md.
/// `cargo test -p tollgate-tests --test transcode -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark, run by hand"]
fn relay_cpu_per_transcoded_call_beside_rtpengine() {
    const CALLS: usize = 10;
    const SECONDS: u32 = 10;
    let dir = TempDir::new("tgtcbench");
    let (tg, mut tg_ng) = node(&dir, 2);
    let re_dir = dir.0.join("rtpengine");
    std::fs::create_dir_all(&re_dir).unwrap();
    let re = peers::rtpengine(&re_dir, RTPENGINE.0.parse().unwrap(), RTPENGINE.1);
    let mut re_ng = peers::ng_client(None, RTPENGINE.0.parse().unwrap());
    println!(
        "| relay | pair | calls | packets out / sent | relay CPU | per packet | calls per core |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (codec, pt) in [(Codec::Opus, 96), (Codec::G722, 9)] {
        for (name, ng, pid) in [
            ("tollgate", &mut tg_ng, tg.child.id()),
            ("rtpengine", &mut re_ng, re.child.id()),
        ] {
            let parties: Vec<(Party, Party)> = (0..CALLS)
                .map(|_| {
                    (
                        Party::new(codec, pt, 20, 1000.0),
                        Party::new(Codec::Pcmu, 0, 20, 800.0),
                    )
                })
                .collect();
            let flags = || {
                vec![(
                    "flags",
                    Value::List(vec![Value::str("codec-transcode-PCMU")]),
                )]
            };
            let targets: Vec<_> = parties
                .iter()
                .enumerate()
                .map(|(i, (a, b))| connect(ng, &format!("bench-{name}-{i}"), (a, b), flags()))
                .collect();
            let (pa, pb) = (parties[0].0.packets(SECONDS), parties[0].1.packets(SECONDS));
            let cpu = || {
                tollgate_bench::cpu::tree(&[pid])
                    .into_iter()
                    .map(tollgate_bench::cpu::process_ns)
                    .sum::<u64>()
            };
            // Drained as it arrives: a socket's buffer holds only a few
            // seconds of packets.
            let socks: Vec<&UdpSocket> = parties
                .iter()
                .flat_map(|(a, b)| [&a.sock, &b.sock])
                .collect();
            socks.iter().for_each(|s| s.set_nonblocking(true).unwrap());
            let mut out = 0;
            let mut drain = || {
                let mut buf = [0u8; 2048];
                for s in &socks {
                    while s.recv(&mut buf).is_ok() {
                        out += 1;
                    }
                }
            };
            let before = cpu();
            let start = Instant::now();
            for (i, (x, y)) in pa.iter().zip(&pb).enumerate() {
                for ((a, b), (a_to, b_to)) in parties.iter().zip(&targets) {
                    a.sock.send_to(x, a_to).unwrap();
                    b.sock.send_to(y, b_to).unwrap();
                }
                drain();
                let due = start + Duration::from_millis(20 * (i as u64 + 1));
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            std::thread::sleep(Duration::from_millis(200));
            drain();
            let used = cpu() - before;
            let sent = 2 * CALLS * pa.len();
            let per_packet = used as f64 / sent as f64;
            println!(
                "| {name} | {} <-> PCMU | {CALLS} | {out} / {sent} | {:.0} ms | {:.1} µs | {:.0} |",
                codec.encoding(),
                used as f64 / 1e6,
                per_packet / 1e3,
                1e9 / (per_packet * 100.0)
            );
            assert!(
                out * 10 >= sent * 9,
                "{name}: {out} of {sent} packets came out"
            );
            for i in 0..CALLS {
                ng_request(
                    ng,
                    "delete",
                    vec![("call-id", Value::str(&format!("bench-{name}-{i}")))],
                );
            }
        }
    }
}
