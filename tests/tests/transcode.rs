//! Transcoding end to end through a real `tollgate run` (socket backend on
//! loopback): an NG offer from a party that speaks only Opus (then only
//! G.722, then only G.729) with `codec-transcode-PCMU`, answered by a party
//! that speaks only PCMU. Each party is a UDP socket of the test sending
//! 1 s of a tone in its own codec as 20 ms RTP packets (1 kHz from the
//! offerer, 800 Hz from the answerer), and each decodes what the relay
//! sends it with its own codec: the tone must arrive at its frequency (the
//! strongest of a scan from 300 to 3,400 Hz) and at its level within 3 dB,
//! in the payload type its SDP named. The call's CDR names each leg's codec
//! and says both were transcoded.

use std::f64::consts::PI;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use tollgate_codec::{Codec, Decoder, Encoder};
use tollgate_ng::Value;
use tollgate_tests::{peers, TempDir};

const NG: &str = "127.0.0.1:22600";
const PORTS: (u16, u16) = (61100, 61199);
const LEVEL_DBFS: f64 = -10.0;
const PACKETS: usize = 50;

/// A party: its socket, codec, payload types and the tone it sends.
struct Party {
    sock: UdpSocket,
    codec: Codec,
    pt: u8,
    tone_hz: f64,
}

impl Party {
    fn new(codec: Codec, pt: u8, tone_hz: f64) -> Party {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Party {
            sock,
            codec,
            pt,
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
             a=rtpmap:101 telephone-event/{clock}\r\na=fmtp:101 0-15\r\na=sendrecv\r\n",
            ip = a.ip(),
            port = a.port(),
            pt = self.pt
        )
    }

    /// Its tone's 20 ms packets, coded in its codec.
    fn packets(&self) -> Vec<Vec<u8>> {
        let rate = self.codec.sample_rate();
        let per = rate as usize / 50;
        let amp = 32767.0 * 10f64.powf(LEVEL_DBFS / 20.0);
        let mut enc = Encoder::new(self.codec).unwrap();
        let ticks = self.codec.rtp_clock_rate() / 50;
        (0..PACKETS)
            .map(|i| {
                let pcm: Vec<i16> = (i * per..(i + 1) * per)
                    .map(|n| {
                        (amp * (2.0 * PI * self.tone_hz * n as f64 / f64::from(rate)).sin()) as i16
                    })
                    .collect();
                let mut p = vec![0x80, self.pt, 0, 0, 0, 0, 0, 0, 0, 0, 0x5a, 0xa5];
                p[2..4].copy_from_slice(&(i as u16).to_be_bytes());
                p[4..8].copy_from_slice(&(i as u32 * ticks).to_be_bytes());
                let mut body = vec![0u8; self.codec.max_payload(20)];
                let n = enc.encode(&pcm, &mut body).unwrap();
                p.extend_from_slice(&body[..n]);
                p
            })
            .collect()
    }

    /// Everything the relay sent it, decoded, after checking each packet's
    /// payload type; the samples at its codec's rate.
    fn heard(&self) -> Vec<i16> {
        let mut dec = Decoder::new(self.codec).unwrap();
        let mut buf = [0u8; 2048];
        let mut pcm = Vec::new();
        let mut frame = vec![0i16; 5760];
        while let Ok(n) = self.sock.recv(&mut buf) {
            assert!(n > 12, "{:?} got a {n}-byte datagram", self.codec);
            assert_eq!(buf[1] & 0x7f, self.pt, "{:?}: payload type", self.codec);
            let m = dec.decode(&buf[12..n], &mut frame).unwrap();
            pcm.extend_from_slice(&frame[..m]);
        }
        pcm
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

/// One call: `codec` offerer, PCMU answerer, media both ways checked.
fn call(ng: &mut tollgate_ng::client::NgClient, call_id: &str, codec: Codec, pt: u8) {
    let a = Party::new(codec, pt, 1000.0);
    let b = Party::new(Codec::Pcmu, 0, 800.0);
    let s = Value::str;
    let offer = ng_request(
        ng,
        "offer",
        vec![
            ("call-id", s(call_id)),
            ("from-tag", s("A")),
            ("sdp", s(&a.sdp())),
            ("flags", Value::List(vec![s("codec-transcode-PCMU")])),
        ],
    );
    let to_b = offer.get("sdp").and_then(Value::as_str).unwrap();
    assert!(
        to_b.contains("a=rtpmap:0 PCMU/8000"),
        "PCMU offered to B: {to_b}"
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
        to_a.contains(&format!("RTP/AVP {pt} 101")),
        "A answered in its own codec: {to_a}"
    );
    let (a_to, b_to) = (peers::relay_media(&answer), peers::relay_media(&offer));
    let (pa, pb) = (a.packets(), b.packets());
    let start = Instant::now();
    for (i, (x, y)) in pa.iter().zip(&pb).enumerate() {
        a.sock.send_to(x, a_to).unwrap();
        b.sock.send_to(y, b_to).unwrap();
        let due = start + Duration::from_millis(20 * (i as u64 + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    check_tone(
        &format!("{codec:?} to PCMU"),
        &b.heard(),
        b.codec.sample_rate(),
        a.tone_hz,
    );
    check_tone(
        &format!("PCMU to {codec:?}"),
        &a.heard(),
        a.codec.sample_rate(),
        b.tone_hz,
    );
    let q = ng_request(ng, "query", vec![("call-id", s(call_id))]);
    assert!(format!("{q:?}").contains("transcoding"), "{q:?}");
    ng_request(
        ng,
        "delete",
        vec![("call-id", s(call_id)), ("from-tag", s("A"))],
    );
}

#[test]
fn opus_g722_and_g729_callers_reach_a_pcmu_callee_both_ways() {
    let dir = TempDir::new("tgtranscode");
    let sections = format!(
        "[cdr]\nspool_dir = \"{0}/spool\"\nsinks = [{{ kind = \"jsonl\", path = \"{0}/cdr.jsonl\" }}]\n",
        dir.0.display()
    );
    let (_tg, _) = peers::tollgate_loopback(&dir.0, NG, PORTS, &["--delete-delay", "0"], &sections);
    let mut ng = peers::ng_client(None, NG.parse().unwrap());
    let calls = [
        ("tc-opus", Codec::Opus, 96, "opus/48000/2"),
        ("tc-g722", Codec::G722, 9, "G722/8000"),
        ("tc-g729", Codec::G729, 18, "G729/8000"),
    ];
    for (id, codec, pt, _) in calls {
        call(&mut ng, id, codec, pt);
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
