//! The data plane's media endpoints on a real node, between network
//! namespaces (`tgi*`): a callee (the caller's far end, as a UDP receiver
//! in the test) hears a busy tone and a prompt that the node's pipeline
//! plays, decoded and checked (tone frequencies and cadence by Goertzel,
//! the prompt by correlation with the audio rendered here); Debian
//! sip-tester's RFC 2833 captures (what SIPp's `uac_pcap` plays), sent by
//! the caller, arrive as `dtmf` events on the control socket; and a digit
//! the node sends arrives as RFC 4733 packets with three ends; digits
//! keyed in band are heard by Goertzel filters on the node. On the
//! socket backend, on XDP's AF_XDP workers and, with `--features dpdk`,
//! on DPDK.

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_codec::Law;
use tollgate_dataplane::control::Request;
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::stages::{AfterPrompt, DigitSpec, ToneSpec};
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_tests::netns::{self, Addrs, Topology};
use tollgate_tests::process::flow;
use tollgate_tests::relay::{sa, Kind, Relay, LIMIT, QUIET};
use tollgate_tests::rtp;
use tollgate_tests::tone::goertzel;

const EVENT_PT: u8 = 101;

/// Caller -> relay 55000 -> (from 55002) -> callee 4000, with `stages`.
fn ivr_flow(a: &Addrs, stages: Vec<StageSpec>) -> Flow {
    Flow {
        stages,
        ..flow(
            &sa(a.relay_a, 55000).to_string(),
            &sa(a.relay_b, 55002).to_string(),
            &sa(a.callee, 4000).to_string(),
        )
    }
}

/// The audio of received G.711 packets of `law`, decoded.
fn decode(packets: &[(Vec<u8>, SocketAddr)], law: Law) -> Vec<Vec<f64>> {
    packets
        .iter()
        .map(|(p, _)| p[12..].iter().map(|&c| f64::from(law.decode(c))).collect())
        .collect()
}

/// The packets of payload type `pt` (a replaced stage's last packets may
/// still be in flight when the next one starts).
fn of_type(got: Vec<(Vec<u8>, SocketAddr)>, pt: u8) -> Vec<(Vec<u8>, SocketAddr)> {
    got.into_iter().filter(|(p, _)| p[1] & 0x7f == pt).collect()
}

/// The UDP payloads of a sip-tester RFC 2833 capture, read by tshark.
fn capture_payloads(digit: u8) -> Vec<Vec<u8>> {
    let path = format!("/usr/share/sip-tester/dtmf_2833_{digit}.pcap");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: install sip-tester (scripts/setup.sh does)"
    );
    let out = Command::new("tshark")
        .args(["-r", &path, "-T", "fields", "-e", "data.data"])
        .output()
        .expect("tshark runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "tshark -r {path}");
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(hex)
        .collect()
}

/// Events of `kind` reported within `within`, at least `want` of them.
fn events_of(r: &Relay, kind: &str, want: usize, within: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    let end = Instant::now() + within;
    while got.len() < want && Instant::now() < end {
        got.extend(
            r.events()
                .into_iter()
                .filter(|e| e["kind"]["event"] == kind),
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    got
}

/// A test prompt: a rising chirp 300 Hz -> 3 kHz over `secs`, at `rate`.
fn chirp(i: usize, rate: f64, secs: f64) -> f64 {
    let t = i as f64 / rate;
    let (f0, f1) = (300.0, 3000.0);
    let phase = 2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) * t * t / (2.0 * secs));
    0.4 * phase.sin()
}

/// The chirp as a 16 kHz stereo 16-bit WAV in a fresh file.
fn write_prompt(secs: f64) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tgi-prompt-{}.wav", std::process::id()));
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create the prompt");
    for i in 0..(16_000.0 * secs) as usize {
        let v = (chirp(i, 16_000.0, secs) * 32767.0) as i16;
        w.write_sample(v).unwrap();
        w.write_sample(v).unwrap();
    }
    w.finalize().expect("write the prompt");
    path
}

/// 100 packets of busy tone: one continuous stream, bursts of 480+620 Hz
/// 25 packets long, marked at their start, 25 packets of silence between.
fn check_busy(got: &[(Vec<u8>, SocketAddr)]) {
    let heads: Vec<(u16, u32, bool)> = got
        .iter()
        .map(|(p, _)| {
            let seq = u16::from_be_bytes([p[2], p[3]]);
            let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
            (seq, ts, p[1] & 0x80 != 0)
        })
        .collect();
    for w in heads.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1), "continuous sequence");
        assert_eq!(w[1].1, w[0].1.wrapping_add(160), "continuous timestamps");
    }
    let marked: Vec<usize> = (0..100).filter(|&i| heads[i].2).collect();
    assert_eq!(marked, vec![0, 50], "the marker starts each burst");
    let audio = decode(got, Law::Pcmu);
    // Cadence: which packets carry sound.
    let loud: Vec<bool> = audio
        .iter()
        .map(|p| p.iter().map(|v| v * v).sum::<f64>() / 160.0 > 1e5)
        .collect();
    let want: Vec<bool> = (0..100).map(|i| i % 50 < 25).collect();
    assert_eq!(loud, want, "0.5 s on, 0.5 s off");
    let burst: Vec<f64> = audio[..25].concat();
    let (f1, f2, other) = (
        goertzel(&burst, 480.0),
        goertzel(&burst, 620.0),
        goertzel(&burst, 440.0),
    );
    assert!(
        f1 > 0.4 && f2 > 0.4 && other < 0.05,
        "480 Hz {f1}, 620 Hz {f2}, 440 Hz {other}"
    );
}

/// Busy tone to the callee while the caller keys 1, 5, 9 from the
/// captures: 480+620 Hz bursts of 25 packets (0.5 s) marked at their
/// start, 25 packets of silence between, one continuous stream; the
/// caller's packets consumed; each digit reported once, in order.
fn busy_tone_and_captured_digits(r: &Relay, a: &Addrs) {
    let caller = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let callee = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let stages = vec![
        StageSpec::DtmfDetect {
            payload_type: EVENT_PT,
            consume: true,
        },
        StageSpec::Tone {
            tone: ToneSpec::parse("busy").unwrap(),
            payload_type: 0,
            ptime_ms: 20,
            repeat: 0,
            consume: true,
        },
    ];
    r.dp.put(ivr_flow(a, stages));
    let _ = r.events();
    let local = sa(a.relay_a, 55000);
    let keyer = std::thread::spawn(move || {
        for digit in [1, 5, 9] {
            for p in capture_payloads(digit) {
                caller.send_to(&p, local).expect("send a digit packet");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    let got = rtp::collect(&callee, 100, QUIET, LIMIT);
    keyer.join().unwrap();
    assert_eq!(got.len(), 100, "2 s of busy tone; {}", r.counters());
    check_busy(&got);

    let digits = events_of(r, "dtmf", 3, Duration::from_secs(3));
    let keyed: Vec<&str> = digits
        .iter()
        .map(|e| e["kind"]["digit"].as_str().unwrap())
        .collect();
    assert_eq!(keyed, ["1", "5", "9"], "{digits:?}");
    for e in &digits {
        assert_eq!(e["local"], local.to_string());
        assert_eq!(e["kind"]["volume"], 10, "{e}");
        assert!(e["kind"]["duration_ms"].as_u64().unwrap() >= 100, "{e}");
    }
    assert_eq!(
        r.pipeline("consumed"),
        30,
        "the captures' 30 packets end at the node"
    );
}

/// A prompt from a 16 kHz stereo WAV, loaded over the control socket and
/// played once as PCMA: the callee's decoded audio matches the chirp
/// rendered at 8 kHz here, then `prompt_done` and no more packets.
fn prompt_is_played_once(r: &Relay, a: &Addrs) {
    let secs = 1.0;
    let path = write_prompt(secs);
    let info =
        r.dp.request(Request::PromptLoad {
            id: 7,
            path: path.clone(),
        })
        .expect("prompt_load");
    assert_eq!(info["samples"], 8000, "{info}");
    assert_eq!(
        (
            info["source_rate"].as_u64(),
            info["source_channels"].as_u64()
        ),
        (Some(16_000), Some(2))
    );
    let bad = r.dp.request(Request::PromptLoad {
        id: 8,
        path: "/nonexistent.wav".into(),
    });
    assert!(format!("{bad:?}").contains("/nonexistent.wav"), "{bad:?}");
    let callee = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let _ = r.events();
    r.dp.put(ivr_flow(
        a,
        vec![StageSpec::Prompt {
            prompt: 7,
            payload_type: 8,
            ptime_ms: 20,
            repeat: 1,
            then: AfterPrompt::Stop,
            consume: true,
        }],
    ));
    let got = of_type(
        rtp::collect(&callee, 80, Duration::from_millis(600), LIMIT),
        8,
    );
    assert_eq!(
        got.len(),
        50,
        "1 s of prompt, then nothing; {}",
        r.counters()
    );
    let heard: Vec<f64> = decode(&got, Law::Pcma).concat();
    let rendered: Vec<f64> = (0..8000)
        .map(|i| chirp(i, 8000.0, secs) * 32767.0)
        .collect();
    let norm = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt();
    let c = heard.iter().zip(&rendered).map(|(h, w)| h * w).sum::<f64>()
        / (norm(&heard) * norm(&rendered));
    assert!(c > 0.95, "correlation with the rendered prompt {c}");
    let done = events_of(r, "prompt_done", 1, Duration::from_secs(2));
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["kind"]["prompt"], 7);
    let _ = std::fs::remove_file(path);
}

/// The node sends '#' for 120 ms as RFC 4733: 6 packets on one
/// timestamp, durations growing, the last duration three times with the
/// end bit.
fn a_digit_is_sent(r: &Relay, a: &Addrs) {
    let callee = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    r.dp.put(ivr_flow(
        a,
        vec![StageSpec::DtmfSend(DigitSpec {
            digit: '#',
            duration_ms: 120,
            volume: 10,
            payload_type: EVENT_PT,
            ptime_ms: 20,
        })],
    ));
    let got = of_type(
        rtp::collect(&callee, 20, Duration::from_millis(600), LIMIT),
        EVENT_PT,
    );
    let payloads: Vec<&[u8]> = got.iter().map(|(p, _)| &p[12..]).collect();
    let durations: Vec<u16> = payloads
        .iter()
        .map(|p| u16::from_be_bytes([p[2], p[3]]))
        .collect();
    assert_eq!(
        durations,
        vec![160, 320, 480, 640, 800, 960, 960, 960],
        "{got:?}"
    );
    assert!(
        payloads.iter().all(|p| p[0] == 11 && p[1] & 0x3f == 10),
        "event #, volume 10"
    );
    assert_eq!(payloads.iter().filter(|p| p[1] & 0x80 != 0).count(), 3);
    let ts: Vec<&[u8]> = got.iter().map(|(p, _)| &p[4..8]).collect();
    assert!(
        ts.windows(2).all(|w| w[0] == w[1]),
        "one event, one timestamp"
    );
}

/// The caller keys 4 and # in band (PCMU audio, 100 ms each with 100 ms
/// between): `dtmf_inband` reports each once, and the audio goes on to
/// the callee untouched.
fn inband_digits_are_heard(r: &Relay, a: &Addrs) {
    let caller = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let callee = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    r.dp.put(ivr_flow(a, vec![StageSpec::DtmfInband { payload_type: 0 }]));
    let _ = r.events();
    let local = sa(a.relay_a, 55000);
    let keys = [(770.0, 1209.0), (941.0, 1477.0)];
    let mut n = 0u32;
    for (row, column) in keys {
        for on in [true, false] {
            for _ in 0..5 {
                let mut p = rtp::packet(9, n as u16);
                for (i, code) in p[12..].iter_mut().enumerate() {
                    let t = f64::from(n * 160 + i as u32) / 8000.0;
                    let w = |hz: f64| (2.0 * std::f64::consts::PI * hz * t).sin();
                    let v = if on {
                        7000.0 * (w(row) + w(column))
                    } else {
                        0.0
                    };
                    *code = Law::Pcmu.encode(v as i16);
                }
                caller.send_to(&p, local).expect("send audio");
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let digits = events_of(r, "dtmf", 2, Duration::from_secs(3));
    let keyed: Vec<&str> = digits
        .iter()
        .map(|e| e["kind"]["digit"].as_str().unwrap())
        .collect();
    assert_eq!(keyed, ["4", "#"], "{digits:?}");
    let passed = rtp::collect(&callee, 20, QUIET, LIMIT);
    assert_eq!(
        rtp::seqs(&of_type(passed, 0)),
        (0..20).collect::<Vec<u16>>()
    );
}

fn ivr_media(kind: Kind) {
    let r = Relay::on(Topology::in_namespaces("tgi"), kind, "");
    let a = netns::v4();
    busy_tone_and_captured_digits(&r, &a);
    prompt_is_played_once(&r, &a);
    a_digit_is_sent(&r, &a);
    inband_digits_are_heard(&r, &a);
}

#[test]
fn socket_media_endpoints_play_tones_prompts_and_hear_dtmf() {
    ivr_media(Kind::Socket);
}

#[test]
fn afxdp_media_endpoints_play_tones_prompts_and_hear_dtmf() {
    ivr_media(Kind::Afxdp);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_media_endpoints_play_tones_prompts_and_hear_dtmf() {
    ivr_media(Kind::Dpdk { workers: 1 });
}
