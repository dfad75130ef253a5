//! Differential test against real rtpengine 10.5: the same NG conversations
//! go to rtpengine and to a real `tollgate run`, and every reply must be
//! equal after normalising what legitimately differs between two relays:
//! relay ports (each relay's ports are renamed P1, P2, ... in the order
//! they first appear in the conversation, so "the same port again" and "a
//! new port" still have to agree), timestamps, the microseconds of the
//! call's creation, and the relays' own SDES keys. One conversation per supported flag and mode.
//!
//! Deliberate differences (README, "Known differences from rtpengine")
//! are asserted as such: rtpengine answers ICE with candidates of its own,
//! Tollgate does not run ICE and strips them.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use tollgate_ng::{Format, Message, Value};
use tollgate_tests::{peers, TempDir};

const RE_NG: &str = "127.0.0.1:22300";
const TG_NG: &str = "127.0.0.1:22301";
const RE_PORTS: (u16, u16) = (47000, 47499);
const TG_PORTS: (u16, u16) = (47500, 47999);

static COOKIE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// The tests of this file share the relays' fixed ports: one at a time.
static RELAYS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One request: command and its keys; `sdp` is filled in by the conversation.
type Step = (&'static str, Vec<(&'static str, Value)>);

fn s(v: &str) -> Value {
    Value::str(v)
}

fn list(items: &[&str]) -> Value {
    Value::List(items.iter().map(|i| Value::str(i)).collect())
}

/// A plain SDP from `ip:port` with `fmts`, plus `extra` media lines.
fn sdp(ip: &str, port: u16, extra: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n{extra}"
    )
}

fn offer(call: &str, sdp: String, more: Vec<(&'static str, Value)>) -> Step {
    let mut k = vec![("call-id", s(call)), ("from-tag", s("A")), ("sdp", s(&sdp))];
    k.extend(more);
    ("offer", k)
}

fn answer(call: &str, to: &str, sdp: String, more: Vec<(&'static str, Value)>) -> Step {
    let mut k = vec![
        ("call-id", s(call)),
        ("from-tag", s("A")),
        ("to-tag", s(to)),
        ("sdp", s(&sdp)),
    ];
    k.extend(more);
    ("answer", k)
}

/// A re-offer from the callee (its tag is the from-tag now).
fn offer_b(call: &str, sdp: String) -> Step {
    let k = vec![
        ("call-id", s(call)),
        ("from-tag", s("B")),
        ("to-tag", s("A")),
        ("sdp", s(&sdp)),
    ];
    ("offer", k)
}

fn answer_a(call: &str, sdp: String) -> Step {
    let k = vec![
        ("call-id", s(call)),
        ("from-tag", s("B")),
        ("to-tag", s("A")),
        ("sdp", s(&sdp)),
    ];
    ("answer", k)
}

fn query(call: &str) -> Step {
    ("query", vec![("call-id", s(call))])
}

fn delete(call: &str, more: Vec<(&'static str, Value)>) -> Step {
    let mut k = vec![("call-id", s(call))];
    k.extend(more);
    ("delete", k)
}

/// Offer, answer, query, delete by from-tag (with statistics).
fn basic(call: &str, o: Vec<(&'static str, Value)>, extra: &str, a_extra: &str) -> Vec<Step> {
    vec![
        offer(call, sdp("192.0.2.10", 7000, extra), o),
        answer(call, "B", sdp("192.0.2.20", 6000, a_extra), vec![]),
        query(call),
        delete(call, vec![("from-tag", s("A"))]),
    ]
}

/// The conversations: name and steps.
fn conversations() -> Vec<(String, Vec<Step>)> {
    let mut out: Vec<(String, Vec<Step>)> = Vec::new();
    let mut add = |name: &str, steps: Vec<Step>| out.push((name.to_string(), steps));
    add("plain", basic("plain", vec![], "", ""));
    add(
        "query before the answer, unknown calls",
        vec![
            offer("q", sdp("192.0.2.10", 7000, ""), vec![]),
            query("q"),
            answer("q", "B", sdp("192.0.2.20", 6000, ""), vec![]),
            ("query", vec![("call-id", s("q")), ("from-tag", s("A"))]),
            delete("q", vec![]),
            delete("q", vec![]),
            delete("q", vec![("flags", list(&["fatal"]))]),
            query("q"),
        ],
    );
    let mux = "a=rtcp-mux\r\n";
    for mode in ["", "offer", "require", "accept", "reject", "demux"] {
        for (o, a) in [("", ""), ("", mux), (mux, ""), (mux, mux)] {
            let call = format!("mux-{mode}-{}-{}", o.len(), a.len());
            let flags = if mode.is_empty() {
                vec![]
            } else {
                vec![("rtcp-mux", list(&[mode]))]
            };
            add(&call, basic(&call, flags, o, a));
        }
    }
    let hold = |call: &str, a_dir: &str, b_dir: &str, ip: &str| {
        vec![
            offer(call, sdp("192.0.2.10", 7000, ""), vec![]),
            answer(call, "B", sdp("192.0.2.20", 6000, ""), vec![]),
            offer(call, sdp(ip, 7000, a_dir), vec![]),
            answer(call, "B", sdp("192.0.2.20", 6000, b_dir), vec![]),
            query(call),
            offer(call, sdp("192.0.2.10", 7000, ""), vec![]),
            answer(call, "B", sdp("192.0.2.20", 6000, ""), vec![]),
            query(call),
            delete(call, vec![]),
        ]
    };
    add("hold RFC 2543", hold("h2543", "", "", "0.0.0.0"));
    add(
        "hold sendonly",
        hold("hsend", "a=sendonly\r\n", "a=recvonly\r\n", "192.0.2.10"),
    );
    add(
        "hold inactive",
        hold("hinact", "a=inactive\r\n", "a=inactive\r\n", "192.0.2.10"),
    );
    add(
        "hold by the callee",
        vec![
            offer("hb", sdp("192.0.2.10", 7000, ""), vec![]),
            answer("hb", "B", sdp("192.0.2.20", 6000, ""), vec![]),
            offer_b("hb", sdp("192.0.2.20", 6000, "a=sendonly\r\n")),
            answer_a("hb", sdp("192.0.2.10", 7000, "a=recvonly\r\n")),
            query("hb"),
            offer_b("hb", sdp("192.0.2.20", 6000, "")),
            answer_a("hb", sdp("192.0.2.10", 7000, "")),
            query("hb"),
            delete("hb", vec![]),
        ],
    );
    add(
        "forked answers",
        vec![
            offer("fork", sdp("192.0.2.10", 7000, ""), vec![]),
            answer("fork", "B1", sdp("192.0.2.20", 6000, ""), vec![]),
            answer("fork", "B2", sdp("192.0.2.30", 6100, ""), vec![]),
            query("fork"),
            delete("fork", vec![]),
        ],
    );
    add(
        "re-offers from new addresses",
        vec![
            offer("move", sdp("192.0.2.10", 7000, ""), vec![]),
            answer("move", "B", sdp("192.0.2.20", 6000, ""), vec![]),
            offer("move", sdp("192.0.2.11", 7100, ""), vec![]),
            answer("move", "B", sdp("192.0.2.20", 6000, ""), vec![]),
            query("move"),
            offer_b("move", sdp("192.0.2.20", 6200, "")),
            answer_a("move", sdp("192.0.2.11", 7100, "")),
            offer("move", sdp("192.0.2.10", 7000, ""), vec![]),
            query("move"),
            delete("move", vec![]),
        ],
    );
    let version = || ("replace", list(&["origin", "SDP version"]));
    add(
        "replace SDP version",
        vec![
            offer("ver", sdp("192.0.2.10", 7000, ""), vec![version()]),
            answer("ver", "B", sdp("192.0.2.20", 6000, ""), vec![]),
            offer("ver", sdp("192.0.2.10", 7000, ""), vec![version()]),
            offer("ver", sdp("192.0.2.10", 7002, ""), vec![version()]),
            delete("ver", vec![]),
        ],
    );
    add(
        "replace origin and session connection",
        basic(
            "repl",
            vec![("replace", list(&["origin", "session-connection"]))],
            "",
            "",
        ),
    );
    add(
        "nonstandard a=rtcp",
        basic(
            "rtcp",
            vec![],
            "a=rtcp:7011\r\n",
            "a=rtcp:6009 IN IP4 192.0.2.21\r\n",
        ),
    );
    add(
        "media address",
        basic("maddr", vec![("media address", s("203.0.113.9"))], "", ""),
    );
    for (name, id) in [("SIP source address", "sipsrc"), ("trust address", "trust")] {
        let keys = vec![
            ("flags", list(&[name])),
            ("received from", list(&["IP4", "203.0.113.7"])),
        ];
        add(name, basic(id, keys, "", ""));
    }
    add(
        "answer narrows the codecs",
        vec![
            offer("narrow", sdp("192.0.2.10", 7000, ""), vec![]),
            ("answer", {
                let a = "v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
                vec![
                    ("call-id", s("narrow")),
                    ("from-tag", s("A")),
                    ("to-tag", s("B")),
                    ("sdp", s(a)),
                ]
            }),
            query("narrow"),
            offer("narrow", sdp("192.0.2.10", 7000, ""), vec![]),
            delete("narrow", vec![]),
        ],
    );
    let codec = |k: &'static str, v: &[&str]| ("codec", Value::dict([(k, list(v))]));
    add(
        "codec strip",
        basic("cstrip", vec![codec("strip", &["PCMU"])], "", ""),
    );
    add(
        "codec mask",
        basic("cmask", vec![codec("mask", &["PCMA"])], "", ""),
    );
    add(
        "codec offer",
        basic("coffer", vec![codec("offer", &["PCMA"])], "", ""),
    );
    add(
        "codec strip all except",
        basic(
            "cexcept",
            vec![(
                "codec",
                Value::dict([("strip", list(&["all"])), ("except", list(&["PCMA"]))]),
            )],
            "",
            "",
        ),
    );
    add(
        "codec flags in the flags list",
        basic(
            "cflags",
            vec![(
                "flags",
                list(&["codec-strip-PCMU", "codec-strip-telephone-event"]),
            )],
            "",
            "",
        ),
    );
    add(
        "label, asymmetric, strict source",
        vec![
            offer(
                "lab",
                sdp("192.0.2.10", 7000, ""),
                vec![
                    ("label", s("caller")),
                    ("flags", list(&["asymmetric", "strict source"])),
                ],
            ),
            answer(
                "lab",
                "B",
                sdp("192.0.2.20", 6000, ""),
                vec![("label", s("callee")), ("flags", list(&["asymmetric"]))],
            ),
            query("lab"),
            delete("lab", vec![("from-tag", s("A"))]),
        ],
    );
    add(
        "direction",
        basic("dir", vec![("direction", list(&["priv", "pub"]))], "", ""),
    );
    add("rich SDP", rich());
    out
}

/// An SDP from `ip:port` offering `fmts` with `lines` (each without CRLF).
fn sdp_with(ip: &str, port: u16, fmts: &str, lines: &[&str]) -> String {
    let mut s = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {fmts}\r\n"
    );
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s
}

/// Transcoding (tests/transcode.rs has the media): one conversation per
/// codec flag, an offer with `flags` from A, B's answer, query, delete.
fn transcoding() -> Vec<(&'static str, Vec<Step>)> {
    let opus = sdp_with(
        "192.0.2.10",
        7000,
        "96 101",
        &[
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 useinbandfec=1",
            "a=rtpmap:101 telephone-event/48000",
            "a=fmtp:101 0-15",
        ],
    );
    let pcmu = |extra: &[&str]| {
        let mut l = vec!["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"];
        l.extend_from_slice(extra);
        sdp_with("192.0.2.10", 7000, "0 101", &l)
    };
    let b = |fmts: &str, lines: &[&str]| sdp_with("192.0.2.20", 6000, fmts, lines);
    let te8 = "a=rtpmap:101 telephone-event/8000";
    let codec = |v: Vec<(&'static str, &[&str])>| {
        (
            "codec",
            Value::dict(v.into_iter().map(|(k, l)| (k, list(l)))),
        )
    };
    let conv = |call: &'static str, a: String, flags: Vec<(&'static str, Value)>, b: String| {
        vec![
            offer(call, a, flags),
            answer(call, "B", b, vec![]),
            query(call),
            delete(call, vec![("from-tag", s("A"))]),
        ]
    };
    vec![
        (
            "opus offerer, transcode to PCMU",
            conv(
                "tc-opus",
                opus.clone(),
                vec![codec(vec![("transcode", &["PCMU"])])],
                b("0 101", &[te8]),
            ),
        ),
        (
            "PCMU offerer, transcode to opus",
            conv(
                "tc-toopus",
                pcmu(&[]),
                vec![codec(vec![("transcode", &["opus"])])],
                b(
                    "96 97",
                    &[
                        "a=rtpmap:96 opus/48000/2",
                        "a=rtpmap:97 telephone-event/48000",
                    ],
                ),
            ),
        ),
        (
            "transcode to G722 and G729, G729 answered",
            conv(
                "tc-g729",
                pcmu(&[]),
                vec![codec(vec![("transcode", &["G722", "G729"])])],
                b("18", &["a=rtpmap:18 G729/8000"]),
            ),
        ),
        (
            "codec-transcode flag, G722 answered",
            conv(
                "tc-flag",
                pcmu(&[]),
                vec![("flags", list(&["codec-transcode-G722"]))],
                b("9 101", &[te8]),
            ),
        ),
        (
            "transcode to a codec offered already, the offered one answered",
            conv(
                "tc-have",
                pcmu(&[]),
                vec![codec(vec![("transcode", &["PCMU", "PCMA"])])],
                b("0", &[]),
            ),
        ),
        (
            "ptime 30 towards a transcoded PCMA answerer",
            conv(
                "tc-ptime",
                pcmu(&["a=ptime:20"]),
                vec![
                    codec(vec![("transcode", &["PCMA"])]),
                    ("ptime", Value::Int(30)),
                ],
                b("8", &["a=ptime:30"]),
            ),
        ),
        (
            "consume the offerer's codec, transcode to PCMA",
            conv(
                "tc-consume",
                pcmu(&[]),
                vec![codec(vec![
                    ("consume", &["PCMU"]),
                    ("transcode", &["PCMA"]),
                ])],
                b("8 101", &[te8]),
            ),
        ),
        (
            "mask the offerer's codec, transcode to PCMA",
            conv(
                "tc-mask",
                pcmu(&[]),
                vec![codec(vec![("mask", &["PCMU"]), ("transcode", &["PCMA"])])],
                b("8 101", &[te8]),
            ),
        ),
    ]
}

/// SDES-SRTP transcrypting (tests/srtp.rs has the media): rtpengine told
/// to leave out the suites Tollgate does not have (AES-192, F8, NULL) and
/// DTLS, which it would offer beside SDES.
fn sdes() -> Vec<(&'static str, Vec<Step>)> {
    let no_extra = || {
        let mut f = Vec::new();
        f.extend(
            [
                "AES_192_CM_HMAC_SHA1_80",
                "AES_192_CM_HMAC_SHA1_32",
                "F8_128_HMAC_SHA1_80",
            ]
            .into_iter()
            .chain([
                "F8_128_HMAC_SHA1_32",
                "NULL_HMAC_SHA1_80",
                "NULL_HMAC_SHA1_32",
            ])
            .map(|s| &*Box::leak(format!("SDES-no-{s}").into_boxed_str())),
        );
        ("flags", list(&f))
    };
    let no_dtls = || ("DTLS", s("off"));
    let savp = |ip, port, lines: &str| sdp(ip, port, lines).replace("RTP/AVP", "RTP/SAVP");
    let k1 =
        "a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\n";
    let k2 = "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31|1:1\r\n\
              a=crypto:2 AEAD_AES_128_GCM inline:MYPI6KpLEfajWXQTsK2sEPay2cPjE06HjFIzdw\r\n";
    vec![
        (
            "SDES: plain caller, SRTP callee",
            vec![
                offer(
                    "sdes1",
                    sdp("192.0.2.10", 7000, ""),
                    vec![("transport-protocol", s("RTP/SAVP")), no_extra(), no_dtls()],
                ),
                answer("sdes1", "B", savp("192.0.2.20", 6000, k1), vec![]),
                query("sdes1"),
                delete("sdes1", vec![]),
            ],
        ),
        (
            "SDES: SRTP caller, plain callee",
            vec![
                offer(
                    "sdes2",
                    savp("192.0.2.10", 7000, k2),
                    vec![("transport-protocol", s("RTP/AVP"))],
                ),
                answer("sdes2", "B", sdp("192.0.2.20", 6000, ""), vec![]),
                query("sdes2"),
                delete("sdes2", vec![]),
            ],
        ),
        (
            "OSRTP offer, answered plain and with a crypto line",
            vec![
                offer("osrtp1", sdp("192.0.2.10", 7000, ""), vec![("OSRTP", list(&["offer"])), no_extra(), no_dtls()]),
                answer("osrtp1", "B", sdp("192.0.2.20", 6000, ""), vec![]),
                offer("osrtp2", sdp("192.0.2.10", 7002, ""), vec![("OSRTP", list(&["offer"])), no_extra(), no_dtls()]),
                answer("osrtp2", "B", sdp("192.0.2.20", 6002, k1), vec![]),
                query("osrtp2"),
                delete("osrtp1", vec![]),
                delete("osrtp2", vec![]),
            ],
        ),
        (
            "OSRTP-accept",
            vec![
                offer(
                    "osrtp3",
                    sdp("192.0.2.10", 7000, k2),
                    vec![("flags", list(&["OSRTP-accept"])), ("transport-protocol", s("RTP/AVP"))],
                ),
                answer("osrtp3", "B", sdp("192.0.2.20", 6000, ""), vec![("flags", list(&["OSRTP-accept"]))]),
                delete("osrtp3", vec![]),
            ],
        ),
        // rtpengine 10.5 does not yet know `SDES-only-` (it offers every
        // suite); `SDES-no-` in the `SDES` list, `pad` and `lifetime` it does.
        (
            "SDES list, pad, lifetime, AVPF to SAVPF",
            vec![
                offer(
                    "sdes3",
                    sdp("192.0.2.10", 7000, "").replace("RTP/AVP", "RTP/AVPF"),
                    vec![
                        ("transport-protocol", s("RTP/SAVPF")),
                        no_extra(),
                        no_dtls(),
                        (
                            "SDES",
                            list(&["no-AEAD_AES_256_GCM", "no-AES_256_CM_HMAC_SHA1_32", "pad", "lifetime"]),
                        ),
                    ],
                ),
                answer(
                    "sdes3",
                    "B",
                    savp("192.0.2.20", 6000, "a=crypto:1 AEAD_AES_128_GCM inline:MYPI6KpLEfajWXQTsK2sEPay2cPjE06HjFIzdw\r\n").replace("RTP/SAVP", "RTP/SAVPF"),
                    vec![],
                ),
                query("sdes3"),
                delete("sdes3", vec![]),
            ],
        ),
    ]
}

/// Several sections (one rejected, one rejected in the answer), unknown
/// attributes, ptime, fmtp, rtcp-fb: the line layout must agree.
fn rich() -> Vec<Step> {
    let o = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=call\r\ni=info\r\na=x-sess:1\r\nt=0 0\r\n\
m=audio 7000 RTP/AVP 0 97 101 13\r\nc=IN IP4 192.0.2.10\r\na=x-foo:bar\r\na=rtpmap:97 opus/48000/2\r\na=fmtp:97 useinbandfec=1\r\n\
a=rtcp-fb:97 nack\r\na=ptime:20\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\na=maxptime:40\r\n\
m=video 0 RTP/AVP 96\r\nc=IN IP4 192.0.2.10\r\na=rtpmap:96 H264/90000\r\n\
m=video 9000 RTP/AVP 96 34\r\nc=IN IP4 192.0.2.10\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f\r\na=rtcp:9005\r\n";
    let a = "v=0\r\no=bob 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 97 101\r\na=rtpmap:97 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\n\
m=video 0 RTP/AVP 96\r\nm=video 0 RTP/AVP 96\r\n";
    vec![
        (
            "offer",
            vec![("call-id", s("rich")), ("from-tag", s("A")), ("sdp", s(o))],
        ),
        answer("rich", "B", a.to_string(), vec![]),
        query("rich"),
        (
            "offer",
            vec![
                ("call-id", s("rich2")),
                ("from-tag", s("A")),
                ("sdp", s(o)),
                ("codec", Value::dict([("strip", list(&["PCMU"]))])),
                ("transport protocol", s("RTP/AVPF")),
            ],
        ),
        delete("rich", vec![]),
        delete("rich2", vec![]),
    ]
}

/// `inline:KEY` for every SDES key (each relay's own), keeping its base64
/// padding.
fn blank_keys(text: &str) -> String {
    let mut parts = text.split("inline:");
    let mut out = parts.next().unwrap_or("").to_string();
    for k in parts {
        let end = k.find(['|', '\r', ' ', ';']).unwrap_or(k.len());
        let pad = end - k[..end].trim_end_matches('=').len();
        out.push_str("inline:KEY");
        out.push_str(&"=".repeat(pad));
        out.push_str(&k[end..]);
    }
    out
}

/// Renames relay ports to P1, P2, ... in order of appearance, and blanks
/// what is a clock reading.
struct Normaliser {
    range: (u16, u16),
    names: HashMap<u16, usize>,
}

impl Normaliser {
    fn port(&mut self, p: i64) -> String {
        if p < self.range.0 as i64 || p > self.range.1 as i64 {
            return p.to_string();
        }
        let n = self.names.len() + 1;
        format!("P{}", self.names.entry(p as u16).or_insert(n))
    }

    fn sdp(&mut self, text: &str) -> String {
        let text = blank_keys(text);
        let mut out = String::new();
        for tok in text.split_inclusive(|c: char| !c.is_ascii_digit()) {
            let (digits, rest) =
                tok.split_at(tok.trim_end_matches(|c: char| !c.is_ascii_digit()).len());
            match digits.parse::<i64>() {
                Ok(p) if digits.len() == 5 => out.push_str(&self.port(p)),
                _ => out.push_str(digits),
            }
            out.push_str(rest);
        }
        out
    }

    fn value(&mut self, key: &str, v: &Value) -> Value {
        match v {
            Value::Int(i) if key == "local port" => Value::str(&self.port(*i)),
            Value::Int(_)
                if matches!(
                    key,
                    "created" | "created_us" | "last signal" | "last packet"
                ) =>
            {
                Value::str("TIME")
            }
            Value::Bytes(_) if key == "sdp" => Value::str(&self.sdp(v.as_str().unwrap_or(""))),
            Value::List(l) => Value::List(l.iter().map(|x| self.value(key, x)).collect()),
            Value::Dict(d) => Value::Dict(
                d.iter()
                    .map(|(k, x)| (k.clone(), self.value(&String::from_utf8_lossy(k), x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn exchange(sock: &UdpSocket, to: SocketAddr, m: &Message) -> Message {
    sock.send_to(&m.encode(), to).expect("send");
    let mut buf = vec![0u8; 65536];
    let (n, _) = sock
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no NG reply from {to} to {:?}: {e}", m.body));
    let (r, _) = Message::decode_prefix(&buf[..n]).expect("reply parses");
    assert_eq!(r.cookie, m.cookie);
    r
}

/// Plays `steps` against the relay at `ng`; the normalised replies.
fn play(ng: &str, range: (u16, u16), steps: &[Step], format: Format) -> Vec<Value> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut norm = Normaliser {
        range,
        names: HashMap::new(),
    };
    let mut out = Vec::new();
    for (i, (cmd, keys)) in steps.iter().enumerate() {
        let mut body = Value::dict(keys.clone());
        body.set("command", s(cmd));
        // Relays cache replies by cookie: every request gets its own.
        let n = COOKIE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cookie = format!("{}-{n}-{i}", std::process::id());
        let mut m = Message::new(cookie.as_bytes(), body);
        m.format = format;
        let r = exchange(&sock, ng.parse().unwrap(), &m);
        assert_eq!(r.format, format, "the reply comes in the request's format");
        out.push(norm.value("", &r.body));
    }
    out
}

/// rtpengine and Tollgate on their NG ports, with the lock on those ports
/// (bind it first, so it is released after both relays have stopped).
fn start_both(dir: &TempDir) -> (std::sync::MutexGuard<'static, ()>, peers::Proc, peers::Proc) {
    let one = RELAYS.lock().unwrap_or_else(|p| p.into_inner());
    peers::require("rtpengine");
    let cmd = tollgate_bench::peers::rtpengine_on(
        &dir.0,
        RE_NG.parse().unwrap(),
        RE_PORTS,
        &["priv/127.0.0.1", "pub/127.0.0.2"],
    );
    let re = peers::spawn(cmd, &dir.0, "rtpengine");
    peers::wait_ng(None, RE_NG.parse().unwrap(), &re);
    let tg_dir = dir.0.join("tg");
    std::fs::create_dir_all(&tg_dir).unwrap();
    let ctl = tg_dir.join("dp.sock");
    let config = format!(
        "[dataplane]\nbackend = \"socket\"\ncontrol_socket = \"{}\"\n",
        ctl.display()
    );
    let (min, max) = (TG_PORTS.0.to_string(), TG_PORTS.1.to_string());
    let args = [
        "--interface",
        "priv/127.0.0.1",
        "--interface",
        "pub/127.0.0.2",
        "--listen-ng",
        TG_NG,
        "--port-min",
        &min,
        "--port-max",
        &max,
        "--delete-delay",
        "0",
    ];
    let tg = peers::tollgate_run(None, &tg_dir, &config, &args, TG_NG.parse().unwrap());
    (one, re, tg)
}

/// Lines that differ, for the failure message.
fn diff(re: &Value, tg: &Value) -> String {
    format!("rtpengine: {re:?}\ntollgate:  {tg:?}")
}

/// Plays each conversation to both relays: the first step of each whose
/// replies differ (or, with `all_ok`, whose rtpengine reply is not `ok`),
/// described for the failure message.
fn differences<N: std::fmt::Display>(convs: Vec<(N, Vec<Step>)>, all_ok: bool) -> Vec<String> {
    let mut failed = Vec::new();
    for (name, steps) in convs {
        let re = play(RE_NG, RE_PORTS, &steps, Format::Bencode);
        let tg = play(TG_NG, TG_PORTS, &steps, Format::Bencode);
        for (i, (a, b)) in re.iter().zip(&tg).enumerate() {
            let refused = all_ok && a.get("result").and_then(Value::as_str) != Some("ok");
            if a != b || refused {
                failed.push(format!(
                    "{name}, step {} ({}):\n{}",
                    i + 1,
                    steps[i].0,
                    diff(a, b)
                ));
                break;
            }
        }
    }
    failed
}

#[test]
fn replies_match_rtpengine() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgdiff");
    let (_one, _re, _tg) = start_both(&dir);
    let failed = differences(conversations(), false);
    assert!(
        failed.is_empty(),
        "{} conversation(s) differ:\n\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

/// SDES transcrypting: every reply `ok` and equal to rtpengine's, with the
/// keys blanked (the media itself is checked in tests/srtp.rs).
#[test]
fn sdes_matches_rtpengine() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgdiffs");
    let (_one, _re, _tg) = start_both(&dir);
    for (name, steps) in sdes() {
        let re = play(RE_NG, RE_PORTS, &steps, Format::Bencode);
        let tg = play(TG_NG, TG_PORTS, &steps, Format::Bencode);
        for (i, (a, b)) in re.iter().zip(&tg).enumerate() {
            let ok = a.get("result").and_then(Value::as_str);
            assert_eq!(ok, Some("ok"), "{name}, step {}: {a:?}", i + 1);
            assert_eq!(a, b, "{name}, step {}:\n{}", i + 1, diff(a, b));
        }
    }
}

/// Transcoding's offers, answers and queries: every reply `ok` and equal
/// to rtpengine's.
#[test]
fn transcoding_matches_rtpengine() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgdifft");
    let (_one, _re, _tg) = start_both(&dir);
    let failed = differences(transcoding(), true);
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// The same conversation in JSON: JSON replies, equal to rtpengine's.
#[test]
fn json_conversations_match_rtpengine() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgdiffj");
    let (_one, _re, _tg) = start_both(&dir);
    let steps = basic("json", vec![("flags", list(&["asymmetric"]))], "", "");
    let re = play(RE_NG, RE_PORTS, &steps, Format::Json);
    let tg = play(TG_NG, TG_PORTS, &steps, Format::Json);
    assert_eq!(re, tg);
}

/// The documented difference: rtpengine answers an ICE offer with
/// candidates of its own, Tollgate strips ICE (it does not run an agent).
#[test]
fn ice_is_stripped_where_rtpengine_runs_it() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgdiffi");
    let (_one, _re, _tg) = start_both(&dir);
    let ice = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\na=candidate:1 1 UDP 2130706431 192.0.2.10 7000 typ host\r\n";
    let steps = vec![
        offer("ice", sdp("192.0.2.10", 7000, ice), vec![]),
        delete("ice", vec![]),
    ];
    let sdp_of = |v: &Value| {
        v.get("sdp")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let re = sdp_of(&play(RE_NG, RE_PORTS, &steps, Format::Bencode)[0]);
    let tg = sdp_of(&play(TG_NG, TG_PORTS, &steps, Format::Bencode)[0]);
    assert!(re.contains("a=candidate:"), "rtpengine runs ICE: {re}");
    assert!(
        !tg.contains("a=candidate:") && !tg.contains("a=ice-"),
        "{tg}"
    );
}

/// The documented difference: a second branch answering with a codec it
/// was never offered (18) is narrowed to what it was offered (8), as the
/// first branch is; rtpengine instead hands the offerer the offer's codecs
/// (0 and 8), one of which that branch never accepted.
#[test]
fn a_forked_answer_is_narrowed_to_what_it_was_offered() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgdifff");
    let (_one, _re, _tg) = start_both(&dir);
    let b2 = sdp("192.0.2.30", 6100, "").replace("RTP/AVP 0 8 101", "RTP/AVP 18 8");
    let steps = vec![
        offer("forkc", sdp("192.0.2.10", 7000, ""), vec![]),
        answer("forkc", "B1", sdp("192.0.2.20", 6000, ""), vec![]),
        answer("forkc", "B2", b2, vec![]),
        delete("forkc", vec![]),
    ];
    let m_line = |replies: Vec<Value>| {
        let sdp = replies[2]
            .get("sdp")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        sdp.lines()
            .find(|l| l.starts_with("m="))
            .unwrap_or("")
            .to_string()
    };
    let re = m_line(play(RE_NG, RE_PORTS, &steps, Format::Bencode));
    let tg = m_line(play(TG_NG, TG_PORTS, &steps, Format::Bencode));
    assert!(re.ends_with("RTP/AVP 0 8"), "rtpengine as documented: {re}");
    assert!(
        tg.ends_with("RTP/AVP 8"),
        "the branch accepted only 8: {tg}"
    );
}
