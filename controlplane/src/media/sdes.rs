//! SDES-SRTP (RFC 4568) for the media session manager, as rtpengine does
//! it: a leg whose SDP is RTP/SAVP(F) while its peer's is RTP/AVP(F) is
//! transcrypted by the relay. Offering SRTP to a plain offerer's peer, the
//! relay writes a crypto line per suite it supports, in rtpengine's order
//! and with fresh keys, and takes the one the answer picks; answering an
//! SRTP offerer for a plain answerer, it picks the first offered suite it
//! supports and answers it with a key of its own. Each side then holds the
//! key its participant sends with (the relay decrypts with it) and the key
//! the relay sends to it with (encrypts); the flows carry them as stages.
//! SRTP on both legs with no protocol change is passed through untouched,
//! keys and all, as rtpengine does.
//!
//! The relay's keys come from the operating system's random source (a key
//! must not be predictable, so not from the seeded id generator).

use super::options::Sdes;
use super::NgError;
use tollgate_dataplane::srtp::{Keying, MasterKey, Mki, Suite};
use tollgate_sip::sdes::{Crypto, KeyParam};
use tollgate_sip::sdp::Media as SdpMedia;

/// The suites the relay offers, in rtpengine's order (strongest first).
const OFFER_ORDER: [Suite; 6] = [
    Suite::AeadAes256Gcm,
    Suite::AeadAes128Gcm,
    Suite::Aes256CmHmacSha1_80,
    Suite::Aes256CmHmacSha1_32,
    Suite::AesCm128HmacSha1_80,
    Suite::AesCm128HmacSha1_32,
];

/// One side's SDES state.
/// Journaled with its session (`media::journal`): a restored transcrypt
/// keeps its keys, in the journal file only (never logs or CDRs).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SideSrtp {
    /// The relay's keys offered to this participant, by tag, until it answers.
    offered: Vec<(u32, Keying)>,
    /// This participant's offered keys, by tag, until the relay answers it.
    remote: Vec<(u32, Keying)>,
    /// The relay decrypts what this participant sends with this key.
    pub rx: Option<Keying>,
    /// The relay encrypts what it sends to this participant with this key.
    pub tx: Option<Keying>,
    /// The tag of the crypto line in use.
    tag: Option<u32>,
    /// The relay's offer was opportunistic (OSRTP): an answer without
    /// crypto leaves the leg plain.
    opportunistic: bool,
}

impl SideSrtp {
    /// The suite in use towards this participant, once negotiated.
    pub fn suite(&self) -> Option<Suite> {
        self.tx.map(|k| k.suite)
    }
}

/// The two sides of one media section in an offer or answer being
/// rewritten: the sender's and the receiver's.
pub struct Sections<'a> {
    pub from: &'a mut SideSrtp,
    pub to: &'a mut SideSrtp,
}

fn allowed(s: Suite, o: &Sdes) -> bool {
    let named = |list: &[String]| list.iter().any(|n| n.eq_ignore_ascii_case(s.name()));
    !o.off && !named(&o.no) && (o.only.is_empty() || named(&o.only))
}

/// The keying of a crypto line the relay supports (its first key).
fn keying(c: &Crypto) -> Option<Keying> {
    let suite = Suite::from_name(&c.suite)?;
    let key = c.keys.first()?;
    let k = Keying {
        suite,
        key: MasterKey::new(&key.key_salt)?,
        mki: key.mki.map(|(value, len)| Mki { value, len }),
        lifetime: key.lifetime,
    };
    // Lines the data plane would refuse (a key of the wrong length, an MKI
    // over 4 bytes) are as good as unsupported.
    k.check().is_ok().then_some(k)
}

/// The section's crypto lines the relay supports and `o` allows, by tag.
fn supported(m: &SdpMedia, o: &Sdes) -> Vec<(u32, Keying)> {
    m.attrs("crypto")
        .filter_map(|v| Crypto::parse(v).ok())
        .filter_map(|c| Some((c.tag, keying(&c)?)))
        .filter(|(_, k)| allowed(k.suite, o))
        .collect()
}

/// A fresh key for `suite` (with the lifetime 2^31 when `o` asks).
fn fresh(suite: Suite, o: &Sdes) -> Result<Keying, NgError> {
    let mut bytes = [0u8; 46];
    let n = suite.key_len() + suite.salt_len();
    getrandom::getrandom(&mut bytes[..n])
        .map_err(|e| NgError(format!("no random source for SRTP keys: {e}")))?;
    Ok(Keying {
        suite,
        key: MasterKey::new(&bytes[..n]).expect("46 bytes at most"),
        mki: None,
        lifetime: o.lifetime.then_some(1 << 31),
    })
}

fn push_line(m: &mut SdpMedia, tag: u32, k: &Keying, o: &Sdes) {
    let key = KeyParam {
        key_salt: k.key.bytes().to_vec(),
        lifetime: k.lifetime,
        mki: None,
    };
    let line = Crypto::new(tag, k.suite.name(), key, o.pad);
    m.push_attr(format!("crypto:{line}"));
}

fn strip(m: &mut SdpMedia) {
    m.remove_attrs(|a| a == "crypto");
}

/// The offer `m` (rewritten for the receiver): SRTP keys offered to an
/// SRTP receiver of a plain offerer (the same keys on a re-offer), a
/// secure offerer's keys kept and stripped for a plain receiver.
/// `from_secure`: the offerer's profile is SRTP; `to_secure`: the one the
/// receiver is given.
pub fn offer(
    s: Sections,
    m: &mut SdpMedia,
    (from_secure, to_secure): (bool, bool),
    o: &Sdes,
) -> Result<(), NgError> {
    match (from_secure, to_secure) {
        (true, false) => {
            s.from.remote = supported(m, o);
            if s.from.remote.is_empty() {
                return Err(NgError(
                    "the offer has no crypto suite this relay supports (or all were excluded)"
                        .into(),
                ));
            }
            strip(m);
            *s.to = SideSrtp::default();
        }
        (false, true) => {
            strip(m);
            if let (Some(tx), Some(tag)) = (s.to.tx, s.to.tag) {
                // A re-offer on an established leg: the key in use.
                s.to.offered = vec![(tag, tx)];
            } else {
                let suites = OFFER_ORDER.into_iter().filter(|&x| allowed(x, o));
                let same = s.to.offered.iter().map(|(_, k)| k.suite).eq(suites.clone());
                if !same {
                    s.to.offered = suites
                        .zip(1..)
                        .map(|(suite, tag)| Ok((tag, fresh(suite, o)?)))
                        .collect::<Result<_, NgError>>()?;
                }
            }
            for (tag, k) in &s.to.offered {
                push_line(m, *tag, k, o);
            }
            s.to.opportunistic = !tollgate_sip::sdes::is_srtp_proto(m.proto());
            *s.from = SideSrtp::default();
        }
        _ => {
            *s.from = SideSrtp::default();
            *s.to = SideSrtp::default();
        }
    }
    Ok(())
}

/// The answer `m` (from the answerer, `s.from`, rewritten for the offerer
/// `s.to`): the answerer's pick among the relay's keys, or the relay's own
/// pick among the offerer's, answered with a key of the relay's.
pub fn answer(s: Sections, m: &mut SdpMedia, o: &Sdes) -> Result<(), NgError> {
    if !s.from.offered.is_empty() {
        // The relay offered SRTP to the answerer.
        let picked =
            m.attrs("crypto")
                .filter_map(|v| Crypto::parse(v).ok())
                .find_map(|c| {
                    let ours = s.from.offered.iter().find(|(t, k)| {
                        *t == c.tag && k.suite.name().eq_ignore_ascii_case(&c.suite)
                    })?;
                    Some((c.tag, ours.1, keying(&c)?))
                });
        let Some((tag, tx, rx)) = picked else {
            if s.from.opportunistic && !m.has_attr("crypto") {
                // An OSRTP offer answered in plain RTP.
                *s.from = SideSrtp::default();
                return Ok(());
            }
            return Err(NgError(
                "the answer accepts none of the crypto suites the relay offered".into(),
            ));
        };
        strip(m);
        s.from.offered.clear();
        (s.from.tx, s.from.rx, s.from.tag) = (Some(tx), Some(rx), Some(tag));
    } else if let Some(&(tag, rx)) = s.to.remote.first() {
        // The offerer offered SRTP; the answerer speaks plain RTP.
        let tx = match s.to.tx.filter(|t| t.suite == rx.suite) {
            Some(t) => t,
            None => fresh(rx.suite, o)?,
        };
        strip(m);
        push_line(m, tag, &tx, o);
        s.to.remote.clear();
        (s.to.tx, s.to.rx, s.to.tag) = (Some(tx), Some(rx), Some(tag));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::memory::MemoryPlane;
    use super::super::options::Options;
    use super::super::{MediaConfig, Sessions};
    use super::*;
    use crate::time::Now;
    use tollgate_dataplane::flow::Flow;
    use tollgate_dataplane::pipeline::StageSpec;
    use tollgate_sip::sdp::Sdp;

    const A_KEY: &str = "d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj";
    const B_KEY: &str = "NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj";

    fn sdp(ip: &str, port: u16, proto: &str, extra: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} {proto} 0 8\r\na=sendrecv\r\n{extra}"
        )
    }

    struct Call {
        s: Sessions,
        plane: MemoryPlane,
        now: Now,
    }

    impl Call {
        fn new() -> Call {
            Call {
                s: Sessions::new(MediaConfig::default()),
                plane: MemoryPlane::default(),
                now: Now::virtual_start(),
            }
        }

        fn offer(&mut self, sdp: &str, o: &Options) -> Result<Sdp, NgError> {
            let out = self
                .s
                .offer(self.now, &mut self.plane, "c", "A", None, sdp, o)?;
            Ok(Sdp::parse(&out).unwrap())
        }

        fn answer(&mut self, sdp: &str, o: &Options) -> Result<Sdp, NgError> {
            let out = self
                .s
                .answer(self.now, &mut self.plane, "c", "A", "B", sdp, o)?;
            Ok(Sdp::parse(&out).unwrap())
        }

        /// The flows sending to `port` (RTP and RTCP), by destination port.
        fn towards(&self, port: u16) -> Vec<Flow> {
            let mut f: Vec<Flow> = (self.plane.flows().into_values())
                .filter(|f| f.destination.port() / 2 == port / 2)
                .collect();
            f.sort_by_key(|f| f.destination.port());
            f
        }
    }

    fn crypto(s: &Sdp) -> Vec<Crypto> {
        s.media[0]
            .attrs("crypto")
            .map(|v| Crypto::parse(v).unwrap())
            .collect()
    }

    fn to_savp() -> Options {
        Options {
            transport_protocol: Some("RTP/SAVP".into()),
            ..Options::default()
        }
    }

    fn key_of(c: &Crypto) -> Vec<u8> {
        c.keys[0].key_salt.clone()
    }

    #[test]
    fn a_plain_offerer_gets_srtp_offered_to_its_peer_and_the_answer_picks_one() {
        let mut c = Call::new();
        let out = c
            .offer(&sdp("192.0.2.10", 7000, "RTP/AVP", ""), &to_savp())
            .unwrap();
        assert_eq!(out.media[0].proto(), "RTP/SAVP");
        let lines = crypto(&out);
        let suites: Vec<&str> = lines.iter().map(|l| l.suite.as_str()).collect();
        assert_eq!(
            suites,
            [
                "AEAD_AES_256_GCM",
                "AEAD_AES_128_GCM",
                "AES_256_CM_HMAC_SHA1_80",
                "AES_256_CM_HMAC_SHA1_32",
                "AES_CM_128_HMAC_SHA1_80",
                "AES_CM_128_HMAC_SHA1_32"
            ]
        );
        assert_eq!(
            lines.iter().map(|l| l.tag).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(key_of(&lines[0]).len(), 44);
        assert!(
            lines.windows(2).all(|w| key_of(&w[0]) != key_of(&w[1])),
            "fresh keys"
        );
        let answer = sdp(
            "192.0.2.20",
            6000,
            "RTP/SAVP",
            &format!("a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:{B_KEY}\r\n"),
        );
        let back = c.answer(&answer, &Options::default()).unwrap();
        assert_eq!(
            back.media[0].proto(),
            "RTP/AVP",
            "A gets its own profile back"
        );
        assert!(crypto(&back).is_empty());
        // A -> B: encrypted with the relay's tag-5 key, RTP and RTCP.
        for f in c.towards(6000) {
            let [StageSpec::SrtpEncrypt(k)] = f.stages[..] else {
                panic!("{:?}", f.stages)
            };
            assert_eq!(
                (k.suite, k.key.bytes()),
                (Suite::AesCm128HmacSha1_80, &key_of(&lines[4])[..])
            );
        }
        // B -> A: decrypted with B's key.
        let b_key =
            key_of(&Crypto::parse(&format!("5 AES_CM_128_HMAC_SHA1_80 inline:{B_KEY}")).unwrap());
        let from_b = c.towards(7000);
        assert_eq!(from_b.len(), 2);
        for f in from_b {
            let [StageSpec::SrtpDecrypt(k)] = f.stages[..] else {
                panic!("{:?}", f.stages)
            };
            assert_eq!(k.key.bytes(), &b_key[..]);
        }
        // A re-offer keeps the leg's profile, key and tag, even without
        // `transport protocol` (a re-INVITE through the B2BUA).
        let again = c
            .offer(&sdp("192.0.2.10", 7000, "RTP/AVP", ""), &Options::default())
            .unwrap();
        assert_eq!(again.media[0].proto(), "RTP/SAVP");
        let lines_again = crypto(&again);
        assert_eq!(lines_again.len(), 1);
        assert_eq!(
            (lines_again[0].tag, key_of(&lines_again[0])),
            (5, key_of(&lines[4]))
        );
        // The CDR says B's leg was SDES with that suite, A's plain, no key.
        c.s.delete(c.now, &mut c.plane, "c", None, None, Some(0));
        let recs = c.s.take_records();
        let cdr = recs
            .iter()
            .find_map(|r| match r {
                tollgate_cdr::model::Record::Ended(cdr) => Some(cdr),
                _ => None,
            })
            .expect("a CDR");
        let srtp: Vec<Option<&str>> = cdr.legs.iter().map(|l| l.srtp.as_deref()).collect();
        assert_eq!(srtp, [None, Some("SDES AES_CM_128_HMAC_SHA1_80")]);
        let json = serde_json::to_string(cdr).unwrap();
        assert!(!json.contains(B_KEY) && !json.contains("inline"), "{json}");
    }

    #[test]
    fn an_srtp_offerer_is_answered_with_the_first_suite_it_offered_and_a_key_of_ours() {
        let mut c = Call::new();
        let offer = sdp(
            "192.0.2.10",
            7000,
            "RTP/SAVP",
            &format!(
                "a=crypto:1 F8_128_HMAC_SHA1_80 inline:{A_KEY}\r\n\
                 a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{A_KEY}|2^20|1:1\r\n\
                 a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{B_KEY}\r\n"
            ),
        );
        let to_avp = Options {
            transport_protocol: Some("RTP/AVP".into()),
            ..Options::default()
        };
        let out = c.offer(&offer, &to_avp).unwrap();
        assert_eq!(out.media[0].proto(), "RTP/AVP");
        assert!(crypto(&out).is_empty(), "no keys towards the plain leg");
        let back = c
            .answer(&sdp("192.0.2.20", 6000, "RTP/AVP", ""), &Options::default())
            .unwrap();
        assert_eq!(back.media[0].proto(), "RTP/SAVP");
        let [line] = &crypto(&back)[..] else {
            panic!("{back}")
        };
        assert_eq!(
            (line.tag, line.suite.as_str()),
            (2, "AES_CM_128_HMAC_SHA1_32")
        );
        assert_ne!(
            key_of(line),
            key_of(&Crypto::parse(&format!("2 X inline:{A_KEY}")).unwrap())
        );
        let [StageSpec::SrtpDecrypt(rx)] = c.towards(6000)[0].stages[..] else {
            panic!()
        };
        assert_eq!(rx.mki, Some(Mki { value: 1, len: 1 }));
        assert_eq!(rx.lifetime, Some(1 << 20));
        let [StageSpec::SrtpEncrypt(tx)] = c.towards(7000)[0].stages[..] else {
            panic!()
        };
        assert_eq!(
            (tx.suite, tx.key.bytes()),
            (Suite::AesCm128HmacSha1_32, &key_of(line)[..])
        );
    }

    #[test]
    fn sdes_flags_narrow_the_suites_and_srtp_on_both_legs_passes_through() {
        let mut c = Call::new();
        let mut o = to_savp();
        o.sdes.only = vec!["AES_CM_128_HMAC_SHA1_80".into(), "AEAD_AES_128_GCM".into()];
        o.sdes.no = vec!["aead_aes_128_gcm".into()];
        let out = c
            .offer(
                &sdp("192.0.2.10", 7000, "RTP/AVPF", ""),
                &Options {
                    transport_protocol: Some("RTP/SAVPF".into()),
                    ..o
                },
            )
            .unwrap();
        assert_eq!(out.media[0].proto(), "RTP/SAVPF");
        let lines = crypto(&out);
        assert_eq!(
            lines
                .iter()
                .map(|l| (l.tag, l.suite.as_str()))
                .collect::<Vec<_>>(),
            [(1, "AES_CM_128_HMAC_SHA1_80")]
        );
        let wrong = sdp(
            "192.0.2.20",
            6000,
            "RTP/SAVPF",
            &format!("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{B_KEY}\r\n"),
        );
        let e = c.answer(&wrong, &Options::default()).unwrap_err();
        assert!(e.0.contains("none of the crypto suites"), "{e:?}");

        let mut p = Call::new();
        let line = format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{A_KEY}\r\n");
        let out = p
            .offer(
                &sdp("192.0.2.10", 7000, "RTP/SAVP", &line),
                &Options::default(),
            )
            .unwrap();
        assert_eq!(
            crypto(&out)[0].to_string(),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{A_KEY}")
        );
        p.answer(
            &sdp("192.0.2.20", 6000, "RTP/SAVP", &line),
            &Options::default(),
        )
        .unwrap();
        assert!(
            p.plane.flows().values().all(|f| f.stages.is_empty()),
            "untouched SRTP"
        );

        let mut off = Call::new();
        let mut o = Options::default();
        o.sdes.off = true;
        let e = off
            .offer(
                &sdp("192.0.2.10", 7000, "RTP/SAVP", &line),
                &Options {
                    transport_protocol: Some("RTP/AVP".into()),
                    ..o
                },
            )
            .unwrap_err();
        assert!(e.0.contains("no crypto suite"), "{e:?}");
    }

    #[test]
    fn an_osrtp_offer_transcrypts_when_answered_with_crypto_and_not_otherwise() {
        let mut o = Options::default();
        o.sdes.osrtp_offer = true;
        for with_crypto in [true, false] {
            let mut c = Call::new();
            let out = c
                .offer(&sdp("192.0.2.10", 7000, "RTP/AVP", ""), &o)
                .unwrap();
            assert_eq!(
                out.media[0].proto(),
                "RTP/AVP",
                "opportunistic: the profile stays"
            );
            assert_eq!(crypto(&out).len(), 6);
            let line = format!("a=crypto:6 AES_CM_128_HMAC_SHA1_32 inline:{B_KEY}\r\n");
            let extra = if with_crypto { line.as_str() } else { "" };
            let back = c
                .answer(
                    &sdp("192.0.2.20", 6000, "RTP/AVP", extra),
                    &Options::default(),
                )
                .unwrap();
            assert!(crypto(&back).is_empty());
            let staged = c
                .plane
                .flows()
                .values()
                .filter(|f| !f.stages.is_empty())
                .count();
            assert_eq!(
                staged,
                if with_crypto { 4 } else { 0 },
                "crypto answered: {with_crypto}"
            );
        }
    }
}
