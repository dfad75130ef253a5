//! What an NG offer/answer/delete asks for, read from its dictionary into
//! the session manager's [`Options`]: the `flags` and `replace` lists,
//! `ICE`, `rtcp-mux`, `direction`, `received from`, `media address`,
//! `transport protocol`, `SDES`, `OSRTP`, `DTLS` (off only), `codec`, `ptime`,
//! `label`, `delete delay`. Flags may also
//! arrive in the `flags` list with spaces written as hyphens and keyed forms
//! such as `codec-strip-PCMA` or `ICE=remove`, as Kamailio's module sends
//! them.

use crate::media::options::{AddressSource, Options};
use std::net::IpAddr;
use tollgate_ng::Value;

/// The longest `delete delay` a request may ask for: a day.
pub const MAX_DELETE_DELAY_SECS: u64 = 86_400;

/// A request the relay cannot honour, with the reason for the NG error.
pub type OptError = String;

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::Bytes(_)) => v
            .and_then(Value::as_str)
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Lower-case, hyphens for spaces: `SIP source address` -> `sip-source-address`.
fn norm(s: &str) -> String {
    s.trim().replace(' ', "-").to_ascii_lowercase()
}

fn ip(v: &str, key: &str) -> Result<IpAddr, OptError> {
    v.parse()
        .map_err(|_| format!("`{key}`: {v:?} is not an IP address"))
}

/// Reads a request's options; the error names the key or flag at fault.
pub fn parse(req: &Value) -> Result<Options, OptError> {
    let mut o = Options::default();
    for r in strings(req.get("replace")) {
        match norm(&r).as_str() {
            "origin" => o.replace_origin = true,
            "session-connection" | "session-c-address" => o.replace_session_connection = true,
            "sdp-version" => o.replace_sdp_version = true,
            // Accepted and already what the relay does, or not applicable.
            "username" | "session-name" | "zero-address" | "force-increment-sdp-ver" => {}
            other => return Err(format!("unknown `replace` value {other:?}")),
        }
    }
    for f in strings(req.get("flags")) {
        flag(&mut o, &f)?;
    }
    if let Some(v) = req.get("ICE").and_then(Value::as_str) {
        set_ice(&mut o, v)?;
    }
    for m in strings(req.get("rtcp-mux")) {
        set_rtcp_mux(&mut o, &m)?;
    }
    let direction = strings(req.get("direction"));
    if !direction.is_empty() {
        o.direction = direction;
    }
    if let Some(i) = req.get("interface").and_then(Value::as_str) {
        o.direction = vec![i.to_string(), i.to_string()];
    }
    if let Some(list) = req
        .get("received from")
        .or_else(|| req.get("received-from"))
        .and_then(Value::as_list)
    {
        let addr = list
            .get(1)
            .and_then(Value::as_str)
            .ok_or("`received from` must be [family, address]")?;
        o.received_from = Some(ip(addr, "received from")?);
    }
    if let Some(a) = req
        .get("media address")
        .or_else(|| req.get("media-address"))
        .and_then(Value::as_str)
    {
        o.media_address = Some(ip(a, "media address")?);
    }
    if let Some(tp) = req
        .get("transport protocol")
        .or_else(|| req.get("transport-protocol"))
        .and_then(Value::as_str)
    {
        set_transport(&mut o, tp)?;
    }
    for item in strings(req.get("SDES")) {
        set_sdes(&mut o, &norm(&item), item.trim())?;
    }
    for item in strings(req.get("OSRTP")) {
        set_osrtp(&mut o, &norm(&item))?;
    }
    if let Some(v) = req.get("DTLS").and_then(Value::as_str) {
        set_dtls(v)?;
    }
    if let Some(codec) = req.get("codec") {
        read_codec(&mut o, codec)?;
    }
    o.ptime = read_ptime(req)?.or(o.ptime);
    if let Some(l) = req
        .get("label")
        .or_else(|| req.get("from-label"))
        .and_then(Value::as_str)
    {
        o.label = Some(l.to_string());
    }
    o.delete_delay = delete_delay(req)?.or(o.delete_delay);
    if let Some(r) = req
        .get("record call")
        .or_else(|| req.get("record-call"))
        .and_then(Value::as_str)
    {
        o.record_call = Some(record_call(r)?);
    }
    Ok(o)
}

/// `record call`'s value: `yes`/`on` or `no`/`off`.
fn record_call(v: &str) -> Result<bool, OptError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "on" => Ok(true),
        "no" | "off" => Ok(false),
        other => Err(format!(
            "`record call`: {other:?} is not yes, no, on or off"
        )),
    }
}

/// The `codec` dictionary: `strip`, `mask`, `consume`, `offer`, `except`,
/// `transcode`. `mask` and `consume` take the codec out of the offer sent
/// on, as `strip` does; the offerer keeps it for an answer transcoded back
/// to it (its own offer is what it is answered from).
fn read_codec(o: &mut Options, codec: &Value) -> Result<(), OptError> {
    o.codec_strip.extend(strings(codec.get("strip")));
    o.codec_strip.extend(strings(codec.get("mask")));
    o.codec_strip.extend(strings(codec.get("consume")));
    o.codec_offer.extend(strings(codec.get("offer")));
    o.codec_except.extend(strings(codec.get("except")));
    o.codec_transcode.extend(strings(codec.get("transcode")));
    Ok(())
}

/// `ptime`: milliseconds, 1 to 200, as an integer or a string.
fn read_ptime(req: &Value) -> Result<Option<u32>, OptError> {
    let Some(v) = req.get("ptime") else {
        return Ok(None);
    };
    let ms = match v {
        Value::Int(n) => u32::try_from(*n).ok(),
        _ => v.as_str().and_then(|s| s.trim().parse().ok()),
    };
    match ms {
        Some(ms @ 1..=200) => Ok(Some(ms)),
        _ => Err(format!("`ptime`: {v:?} is not milliseconds from 1 to 200")),
    }
}

/// `delete delay` (or `delete-delay`): seconds, as an integer or a string,
/// at most [`MAX_DELETE_DELAY_SECS`].
fn delete_delay(req: &Value) -> Result<Option<u64>, OptError> {
    let dd = req.get("delete delay").or_else(|| req.get("delete-delay"));
    let delay = match dd {
        Some(Value::Int(n)) if *n >= 0 => Some(*n as u64),
        Some(Value::Bytes(_)) => {
            let s = dd.and_then(Value::as_str).unwrap_or("");
            Some(
                s.parse()
                    .map_err(|_| format!("`delete delay`: {s:?} is not a number of seconds"))?,
            )
        }
        Some(_) => return Err("`delete delay` must be a non-negative integer".into()),
        None => None,
    };
    if let Some(d) = delay.filter(|&d| d > MAX_DELETE_DELAY_SECS) {
        return Err(format!(
            "`delete delay` {d} is over the limit of {MAX_DELETE_DELAY_SECS} seconds (a day)"
        ));
    }
    Ok(delay)
}

fn flag(o: &mut Options, raw: &str) -> Result<(), OptError> {
    let f = norm(raw);
    if let Some((k, v)) = raw.split_once('=') {
        return match norm(k).as_str() {
            "ice" => set_ice(o, v),
            "rtcp-mux" => set_rtcp_mux(o, v),
            "direction" => {
                o.direction.push(v.to_string());
                Ok(())
            }
            "transport-protocol" => set_transport(o, v),
            "dtls" => set_dtls(v),
            "label" | "from-label" => {
                o.label = Some(v.to_string());
                Ok(())
            }
            "media-address" => {
                o.media_address = Some(ip(v, "media-address")?);
                Ok(())
            }
            "record-call" => {
                o.record_call = Some(record_call(v)?);
                Ok(())
            }
            "delete-delay" => {
                o.delete_delay = Some(
                    v.parse()
                        .map_err(|_| format!("`delete-delay={v}` is not seconds"))?,
                );
                Ok(())
            }
            _ => Ok(()), // keyed flags for features not involved in relaying (via-branch=, ...)
        };
    }
    for (prefix, list) in [
        ("codec-strip-", 0),
        ("codec-mask-", 0),
        ("codec-consume-", 0),
        ("codec-offer-", 1),
        ("codec-except-", 2),
        ("codec-transcode-", 3),
    ] {
        if f.starts_with(prefix) {
            let name = raw.trim()[prefix.len()..].to_string();
            match list {
                0 => o.codec_strip.push(name),
                1 => o.codec_offer.push(name),
                2 => o.codec_except.push(name),
                _ => o.codec_transcode.push(name),
            }
            return Ok(());
        }
    }
    if let Some(osrtp) = f.strip_prefix("osrtp-") {
        return set_osrtp(o, osrtp);
    }
    if let Some(sdes) = f.strip_prefix("sdes-") {
        return set_sdes(o, sdes, &raw.trim()["SDES-".len()..]);
    }
    if f == "always-transcode" {
        return Err(format!(
            "flag {raw:?}: not yet supported (transcoding engages only where the answer picks a codec the offerer lacks)"
        ));
    }
    match f.as_str() {
        "trust-address" => o.address_source = AddressSource::Sdp,
        "sip-source-address" => o.address_source = AddressSource::SipSource,
        "symmetric" => o.asymmetric = false,
        "asymmetric" => o.asymmetric = true,
        "strict-source" => o.strict_source = true,
        "fatal" => o.fatal = true,
        "no-rtcp-attribute" => o.no_rtcp_attribute = true,
        "record-call" => o.record_call = Some(true),
        "replace-origin" => o.replace_origin = true,
        "replace-session-connection" => o.replace_session_connection = true,
        // Accepted: already the relay's behaviour, or about features
        // (ICE, SRTP, recording details) that plain relaying leaves alone.
        "port-latching"
        | "no-port-latching"
        | "media-handover"
        | "loop-protect"
        | "original-sendrecv"
        | "reset"
        | "all"
        | "full-rtcp-attribute"
        | "generate-mid"
        | "trickle-ice"
        | "reject-ice"
        | "unidirectional"
        | "debug"
        | "pierce-nat"
        | "nat-wait"
        | "single-codec"
        | "reuse-codecs"
        | "no-codec-renegotiation"
        | "strip-extmap"
        | "early-media" => {}
        other => return Err(format!("unknown flag {other:?}")),
    }
    Ok(())
}

/// One `SDES` item (`off`, `no-<suite>`, `only-<suite>`), `raw` as sent
/// (suite names keep their case).
fn set_sdes(o: &mut Options, item: &str, raw: &str) -> Result<(), OptError> {
    if matches!(item, "off" | "no" | "disable") {
        o.sdes.off = true;
    } else if item == "pad" {
        o.sdes.pad = true;
    } else if item == "lifetime" {
        o.sdes.lifetime = true;
    } else if let Some(s) = item.strip_prefix("no-") {
        o.sdes.no.push(raw[raw.len() - s.len()..].to_string());
    } else if let Some(s) = item.strip_prefix("only-") {
        o.sdes.only.push(raw[raw.len() - s.len()..].to_string());
    } else {
        return Err(format!(
            "`SDES` {raw:?}: this relay knows off, no-<suite> and only-<suite>"
        ));
    }
    Ok(())
}

/// One `OSRTP` item: `offer` and `accept` (RFC 8643; `-RFC` spelled out or
/// not); the legacy duplicated-section forms are refused.
fn set_osrtp(o: &mut Options, item: &str) -> Result<(), OptError> {
    match item {
        "offer" | "offer-rfc" => o.sdes.osrtp_offer = true,
        "accept" | "accept-rfc" => o.sdes.osrtp_accept = true,
        other => {
            return Err(format!(
                "`OSRTP` {other:?}: this relay knows offer and accept"
            ))
        }
    }
    Ok(())
}

/// `DTLS`: only `off`/`no` (the relay has no DTLS-SRTP yet).
fn set_dtls(v: &str) -> Result<(), OptError> {
    match norm(v).as_str() {
        "off" | "no" | "disable" => Ok(()),
        other => Err(format!(
            "`DTLS` {other:?}: DTLS-SRTP is not supported by this relay yet"
        )),
    }
}

fn set_ice(o: &mut Options, v: &str) -> Result<(), OptError> {
    let v = norm(v);
    match v.as_str() {
        "remove" | "force" | "force-relay" | "default" | "optional" => {
            o.ice = Some(v);
            Ok(())
        }
        _ => Err(format!(
            "`ICE`: unknown value {v:?} (remove, force, force-relay, default, optional)"
        )),
    }
}

fn set_rtcp_mux(o: &mut Options, v: &str) -> Result<(), OptError> {
    let v = norm(v);
    match v.as_str() {
        "offer" | "require" | "demux" | "accept" | "reject" => {
            o.rtcp_mux.push(v);
            Ok(())
        }
        _ => Err(format!(
            "`rtcp-mux`: unknown value {v:?} (offer, require, demux, accept, reject)"
        )),
    }
}

fn set_transport(o: &mut Options, tp: &str) -> Result<(), OptError> {
    match tp {
        "RTP/AVP" | "RTP/AVPF" | "RTP/SAVP" | "RTP/SAVPF" | "accept" => {
            o.transport_protocol = (tp != "accept").then(|| tp.to_string());
            Ok(())
        }
        "UDP/TLS/RTP/SAVP" | "UDP/TLS/RTP/SAVPF" => Err(format!(
            "`transport protocol` {tp}: DTLS-SRTP is not supported by this relay yet"
        )),
        other => Err(format!("`transport protocol`: unknown value {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: Vec<(&str, Value)>) -> Value {
        Value::dict(pairs)
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| Value::str(s)).collect())
    }

    #[test]
    fn reads_what_kamailio_sends() {
        let r = req(vec![
            ("replace", list(&["origin", "session-connection"])),
            ("received-from", list(&["IP4", "10.1.2.3"])),
            (
                "flags",
                list(&[
                    "SIP-source-address",
                    "strict-source",
                    "codec-strip-PCMA",
                    "ICE=remove",
                    "direction=pub",
                    "direction=priv",
                ]),
            ),
            ("rtcp-mux", list(&["demux"])),
            ("transport-protocol", Value::str("RTP/AVP")),
            ("delete delay", Value::Int(0)),
        ]);
        let o = parse(&r).unwrap();
        assert!(o.replace_origin && o.replace_session_connection && o.strict_source);
        assert_eq!(o.address_source, AddressSource::SipSource);
        assert_eq!(o.received_from, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(o.codec_strip, ["PCMA"]);
        assert_eq!(o.ice.as_deref(), Some("remove"));
        assert_eq!(o.direction, ["pub", "priv"]);
        assert!(o.mux("demux"));
        assert_eq!(o.delete_delay, Some(0));
    }

    #[test]
    fn reads_sdes_as_flags_and_as_a_list() {
        let r = req(vec![
            (
                "flags",
                list(&[
                    "SDES-no-AEAD_AES_256_GCM",
                    "SDES-only-AES_CM_128_HMAC_SHA1_80",
                ]),
            ),
            ("SDES", list(&["no-AES_CM_128_HMAC_SHA1_32", "off"])),
            ("DTLS", Value::str("off")),
            ("transport-protocol", Value::str("RTP/SAVPF")),
        ]);
        let o = parse(&r).unwrap();
        assert_eq!(o.sdes.no, ["AEAD_AES_256_GCM", "AES_CM_128_HMAC_SHA1_32"]);
        assert_eq!(o.sdes.only, ["AES_CM_128_HMAC_SHA1_80"]);
        assert!(o.sdes.off);
        assert_eq!(o.transport_protocol.as_deref(), Some("RTP/SAVPF"));
        let e = parse(&req(vec![("DTLS", Value::str("passive"))])).unwrap_err();
        assert!(e.contains("DTLS-SRTP is not supported"), "{e}");
        let o = parse(&req(vec![
            ("flags", list(&["OSRTP-offer"])),
            ("OSRTP", list(&["accept-RFC"])),
        ]))
        .unwrap();
        assert!(o.sdes.osrtp_offer && o.sdes.osrtp_accept);
    }

    #[test]
    fn refuses_what_it_cannot_do_and_says_why() {
        let e = parse(&req(vec![("flags", list(&["teleport"]))])).unwrap_err();
        assert_eq!(e, "unknown flag \"teleport\"");
        let e = parse(&req(vec![(
            "transport protocol",
            Value::str("UDP/TLS/RTP/SAVPF"),
        )]))
        .unwrap_err();
        assert!(e.contains("DTLS-SRTP is not supported"), "{e}");
        let e = parse(&req(vec![("flags", list(&["SDES-nonew"]))])).unwrap_err();
        assert!(e.contains("`SDES` \"nonew\""), "{e}");
        let e = parse(&req(vec![("ICE", Value::str("sideways"))])).unwrap_err();
        assert!(e.contains("`ICE`: unknown value"), "{e}");
        let e = parse(&req(vec![("media address", Value::str("somewhere"))])).unwrap_err();
        assert!(e.contains("not an IP address"), "{e}");
        let e = parse(&req(vec![("ptime", Value::Int(0))])).unwrap_err();
        assert!(e.contains("`ptime`"), "{e}");
        let e = parse(&req(vec![("flags", list(&["always-transcode"]))])).unwrap_err();
        assert!(e.contains("not yet supported"), "{e}");
    }

    #[test]
    fn codecs_to_transcode_to_come_from_flags_then_the_codec_dict() {
        let o = parse(&req(vec![
            ("codec", Value::dict([("transcode", list(&["opus"]))])),
            ("flags", list(&["codec-transcode-G722"])),
            ("ptime", Value::str("30")),
        ]))
        .unwrap();
        assert_eq!(o.codec_transcode, ["G722", "opus"]);
        assert_eq!(o.ptime, Some(30));
    }
}
