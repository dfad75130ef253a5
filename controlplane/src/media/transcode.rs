//! Codec transcoding in offer/answer, as rtpengine 10.5 does it: an offer
//! with `codec` `transcode` goes on with the codecs named added after the
//! offerer's own (static payload types where they have one, else the
//! lowest free dynamic one, with telephone-event at each new clock rate
//! where the offerer sent telephone-event); an answer that picks a codec
//! the offerer never offered goes back to the offerer as the offerer's own
//! first codec the relay can transcode (and its telephone-event), and both
//! directions of the call then carry a `transcode` stage. `ptime` sets the
//! packet time of the offer sent on; the answer back keeps the offerer's.
//! Each party's side remembers its own offer ([`Transcoding`]) to answer
//! it in its own terms.

use super::options::Options;
use super::{encoding, NgError};
use serde::{Deserialize, Serialize};
use tollgate_codec::Codec;
use tollgate_dataplane::pipeline::stages::{EventMap, Side, TranscodeSpec};
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_sip::sdp::Media as SdpMedia;

/// Attributes that describe a section's codecs.
const CODEC_ATTRS: [&str; 4] = ["rtpmap", "fmtp", "rtcp-fb", "ptime"];

/// One party's side of a media section, as transcoding needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Transcoding {
    /// Its own last offer: each format with its `name/rate`, and the
    /// codec attribute lines (`rtpmap:..`, `fmtp:..`, `ptime:..`).
    own: Vec<(String, Option<String>)>,
    lines: Vec<String>,
    /// The codecs the relay added to that offer (`codec` `transcode`): an
    /// answer in one of them is transcoded; an answer in any other codec
    /// the offerer lacks goes back as it is, as rtpengine sends it.
    #[serde(default)]
    added: Vec<Codec>,
    /// What it speaks while the relay transcodes for it.
    speaks: Option<Speaks>,
}

/// The codec, payload type and ptime a party speaks, and its
/// telephone-event payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Speaks {
    side: Side,
    events: Option<u8>,
}

/// The codec an NG request names (`opus`, `PCMU`, ...), any case.
fn named(name: &str) -> Option<Codec> {
    Codec::ALL
        .into_iter()
        .find(|c| c.encoding().eq_ignore_ascii_case(name))
}

/// Refuses codecs to transcode to that the relay has no coder for.
pub(super) fn check(o: &Options) -> Result<(), NgError> {
    match o.codec_transcode.iter().find(|c| named(c).is_none()) {
        Some(c) => Err(NgError(format!(
            "`codec` `transcode`: {c:?} is not a codec this relay transcodes (PCMU, PCMA, G722, G729, opus)"
        ))),
        None => Ok(()),
    }
}

fn is_event(enc: Option<&str>) -> bool {
    enc.is_some_and(|e| e.to_ascii_lowercase().starts_with("telephone-event/"))
}

fn is_supplement(enc: Option<&str>) -> bool {
    is_event(enc) || enc.is_some_and(|e| e.to_ascii_uppercase().starts_with("CN/"))
}

fn rate(enc: &str) -> Option<u32> {
    enc.split('/').nth(1)?.parse().ok()
}

/// The codec a format's `name/rate` is, if the relay can code it.
fn codec(enc: Option<&str>) -> Option<Codec> {
    let enc = enc?;
    Codec::from_encoding(enc.split('/').next()?, rate(enc)?)
}

/// The section's codec attribute lines, as `name:value`.
fn codec_lines(m: &SdpMedia) -> Vec<String> {
    CODEC_ATTRS
        .iter()
        .flat_map(|n| m.attrs(n).map(move |v| format!("{n}:{v}")))
        .collect()
}

/// The lines of `lines` that belong to payload type `pt`.
fn lines_of<'a>(lines: &'a [String], pt: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    lines.iter().filter(move |l| {
        let (name, value) = l.split_once(':').unwrap_or((l, ""));
        name != "ptime" && value.split(' ').next() == Some(pt)
    })
}

/// In an offer from x: remembers x's own codecs, then adds for y the
/// codecs `transcode` names that x did not offer, and sets `ptime`.
pub(super) fn offer(xt: &mut Transcoding, m: &mut SdpMedia, o: &Options) {
    let formats = m.formats();
    xt.own = formats
        .iter()
        .map(|f| (f.clone(), encoding(m, f)))
        .collect();
    xt.lines = codec_lines(m);
    if let Some(p) = o.ptime {
        m.remove_attrs(|n| n == "ptime");
        m.push_attr(format!("ptime:{p}"));
    }
    let have: Vec<Codec> = xt
        .own
        .iter()
        .filter_map(|(_, e)| codec(e.as_deref()))
        .collect();
    let adding: Vec<Codec> = o
        .codec_transcode
        .iter()
        .filter_map(|c| named(c))
        .filter(|c| !have.contains(c))
        .collect();
    xt.added.clear();
    if adding.is_empty() || m.kind() != "audio" {
        return;
    }
    xt.added.clone_from(&adding);
    let mut used: Vec<String> = formats.clone();
    let mut free = || {
        let pt = (96..128u8).find(|p| !used.contains(&p.to_string()))?;
        used.push(pt.to_string());
        Some(pt.to_string())
    };
    let mut added = Vec::new();
    for c in &adding {
        let Some(pt) = c
            .static_payload_type()
            .map(|p| p.to_string())
            .or_else(&mut free)
        else {
            continue;
        };
        m.push_attr(format!("rtpmap:{pt} {}", rtpmap(*c)));
        if *c == Codec::G729 {
            m.push_attr(format!("fmtp:{pt} annexb=no"));
        }
        added.push(pt);
    }
    let event_rates: Vec<u32> = xt
        .own
        .iter()
        .filter(|(_, e)| is_event(e.as_deref()))
        .filter_map(|(_, e)| rate(e.as_deref()?))
        .collect();
    if !event_rates.is_empty() {
        let mut new_rates: Vec<u32> = adding.iter().map(|c| c.rtp_clock_rate()).collect();
        new_rates.dedup();
        for r in new_rates.into_iter().filter(|r| !event_rates.contains(r)) {
            let Some(pt) = free() else { continue };
            m.push_attr(format!("rtpmap:{pt} telephone-event/{r}"));
            m.push_attr(format!("fmtp:{pt} 0-15"));
            added.push(pt);
        }
    }
    // The additions go after x's own codecs, before its supplements.
    let at = xt
        .own
        .iter()
        .position(|(_, e)| is_supplement(e.as_deref()))
        .unwrap_or(formats.len());
    let mut out = formats;
    out.splice(at..at, added);
    m.set_formats(&out);
}

/// How rtpengine writes a codec it adds.
fn rtpmap(c: Codec) -> String {
    match c {
        Codec::Opus => "opus/48000/2".into(),
        _ => format!("{}/{}", c.encoding(), c.rtp_clock_rate()),
    }
}

fn ptime(lines: &[String]) -> u32 {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("ptime:")?.trim().parse().ok())
        .unwrap_or(20)
}

/// In an answer from x to y (the offerer): where x picked a codec y never
/// offered, both now speak their own (x's first, y's first the relay can
/// code), and the section goes back to y in y's terms; otherwise no
/// transcoding.
pub(super) fn answer(xt: &mut Transcoding, yt: &mut Transcoding, m: &mut SdpMedia) {
    xt.speaks = None;
    yt.speaks = None;
    let formats: Vec<(String, Option<String>)> = m
        .formats()
        .into_iter()
        .map(|f| {
            let e = encoding(m, &f);
            (f, e)
        })
        .collect();
    let Some((x_pt, x_codec)) = formats
        .iter()
        .find(|(_, e)| !is_supplement(e.as_deref()))
        .and_then(|(pt, e)| Some((pt.parse::<u8>().ok()?, codec(e.as_deref())?)))
    else {
        return;
    };
    let offered_by_y = yt
        .own
        .iter()
        .any(|(_, e)| codec(e.as_deref()) == Some(x_codec));
    if offered_by_y || !yt.added.contains(&x_codec) {
        return;
    }
    let Some((y_pt, y_codec)) = yt
        .own
        .iter()
        .find_map(|(pt, e)| Some((pt.parse::<u8>().ok()?, codec(e.as_deref())?)))
    else {
        return;
    };
    let event_at = |list: &[(String, Option<String>)], clock: Option<u32>| {
        list.iter()
            .filter(|(_, e)| is_event(e.as_deref()))
            .find(|(_, e)| clock.is_none() || e.as_deref().and_then(rate) == clock)
            .and_then(|(pt, _)| pt.parse::<u8>().ok())
    };
    let x_events = event_at(&formats, None);
    let y_events = x_events.and(event_at(&yt.own, Some(y_codec.rtp_clock_rate())));
    let x_lines = codec_lines(m);
    xt.speaks = Some(Speaks {
        side: Side {
            codec: x_codec,
            payload_type: x_pt,
            ptime_ms: ptime(&x_lines),
        },
        events: x_events,
    });
    yt.speaks = Some(Speaks {
        side: Side {
            codec: y_codec,
            payload_type: y_pt,
            ptime_ms: ptime(&yt.lines),
        },
        events: y_events,
    });
    let mut back = vec![y_pt.to_string()];
    back.extend(y_events.map(|e| e.to_string()));
    m.remove_attrs(|n| CODEC_ATTRS.contains(&n));
    for pt in &back {
        for l in lines_of(&yt.lines, pt) {
            m.push_attr(l.clone());
        }
    }
    for l in yt.lines.iter().filter(|l| l.starts_with("ptime:")) {
        m.push_attr(l.clone());
    }
    m.set_formats(&back);
}

/// The `transcode` stage of the flow from x to y, when the relay
/// transcodes between them.
pub(super) fn stage(xt: &Transcoding, yt: &Transcoding) -> Option<StageSpec> {
    let (x, y) = (xt.speaks?, yt.speaks?);
    let events = match (x.events, y.events) {
        (Some(from), Some(to)) => Some(EventMap { from, to }),
        _ => None,
    };
    Some(StageSpec::Transcode(TranscodeSpec {
        from: x.side,
        to: y.side,
        events,
    }))
}

/// Whether the relay transcodes this party's media.
pub(super) fn transcoded(t: &Transcoding) -> bool {
    t.speaks.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_sip::sdp::Sdp;

    fn media(fmts: &str, lines: &str) -> SdpMedia {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP {fmts}\r\n{lines}"
        );
        Sdp::parse(&text).unwrap().media.remove(0)
    }

    fn asking(codecs: &[&str]) -> Options {
        Options {
            codec_transcode: codecs.iter().map(|c| c.to_string()).collect(),
            ..Options::default()
        }
    }

    #[test]
    fn an_unknown_codec_is_refused_by_name() {
        let e = check(&asking(&["opus", "AMR-WB"])).unwrap_err();
        assert!(e.0.contains("\"AMR-WB\" is not a codec"), "{}", e.0);
        assert!(check(&asking(&["OPUS", "g722"])).is_ok());
    }

    #[test]
    fn an_answer_in_a_codec_the_offerer_has_is_not_transcoded() {
        let (mut a, mut b) = (Transcoding::default(), Transcoding::default());
        let mut to_b = media("0 101", "a=rtpmap:101 telephone-event/8000\r\n");
        offer(&mut a, &mut to_b, &asking(&["PCMA"]));
        assert_eq!(to_b.formats(), ["0", "8", "101"]);
        let mut same = media("0", "");
        answer(&mut b, &mut a, &mut same);
        assert_eq!(stage(&b, &a), None);
        let mut other = media("8 101", "a=rtpmap:101 telephone-event/8000\r\n");
        answer(&mut b, &mut a, &mut other);
        assert_eq!(other.formats(), ["0", "101"], "back in A's terms");
        let Some(StageSpec::Transcode(t)) = stage(&b, &a) else {
            panic!("a transcode stage from B to A")
        };
        assert_eq!((t.from.codec, t.to.codec), (Codec::Pcma, Codec::Pcmu));
        assert_eq!(t.events, Some(EventMap { from: 101, to: 101 }));
    }

    /// Without `transcode`, an answer in a codec the offer never had (as
    /// SIPp's UAS sends) goes back as it is and nothing is transcoded.
    #[test]
    fn an_answer_outside_the_offer_is_not_transcoded_unless_asked() {
        let (mut a, mut b) = (Transcoding::default(), Transcoding::default());
        let mut to_b = media("8", "");
        offer(&mut a, &mut to_b, &asking(&[]));
        let mut other = media("0", "");
        answer(&mut b, &mut a, &mut other);
        assert_eq!(other.formats(), ["0"], "relayed as answered");
        assert_eq!(stage(&b, &a), None);
        assert!(!transcoded(&a) && !transcoded(&b));
        // Asked once, then re-offered without: no longer transcoded.
        offer(&mut a, &mut media("8", ""), &asking(&["PCMU"]));
        offer(&mut a, &mut media("8", ""), &asking(&[]));
        answer(&mut b, &mut a, &mut media("0", ""));
        assert_eq!(stage(&b, &a), None);
    }
}
