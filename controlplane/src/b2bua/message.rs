//! What the B2BUA reads from SIP messages and carries between the legs:
//! SDP bodies, session-timer headers, the users in URIs, and the media
//! options for the SDP it rewrites (with a route's SRTP profile).

use super::*;

/// NG options for SDP the B2BUA rewrites: `from` is where the SDP's
/// sender signalled from; origin and session connection become ours; SDES
/// keys the relay writes keep their base64 padding (libre, under baresip,
/// reads an unpadded 44-byte AEAD_AES_256_GCM key as 42 bytes).
pub(super) fn media_options(from: std::net::IpAddr) -> Options {
    Options {
        received_from: Some(from),
        replace_origin: true,
        replace_session_connection: true,
        sdes: Sdes {
            pad: true,
            ..Sdes::default()
        },
        ..Options::default()
    }
}

/// The profile a route's `srtp` gives the offer towards its target: the
/// offer's own (its first section's), secure or plain.
pub(super) fn transport_towards(offer: &str, srtp: RouteSrtp) -> Option<String> {
    let sdp = tollgate_sip::sdp::Sdp::parse(offer).ok()?;
    let proto = sdp.media.first()?.proto();
    Some(tollgate_sip::sdes::with_srtp(
        proto,
        srtp == RouteSrtp::Sdes,
    ))
}

/// RFC 4028 headers a B2BUA carries from one leg to the other.
pub(super) const SESSION_TIMER_HEADERS: [&str; 4] =
    ["Session-Expires", "Min-SE", "Supported", "Require"];

pub(super) fn copy_headers(from: &Message, to: &mut Message, names: &[&str]) {
    for h in names {
        if let Some(v) = from.header(h) {
            to.set_header(h, v);
        }
    }
}

/// The delta-seconds of a Session-Expires header.
pub(super) fn session_expires(m: &Message) -> Option<u64> {
    m.header("Session-Expires")?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()
}

pub(super) fn sdp_of(m: &Message) -> Option<String> {
    let is_sdp = m
        .header("Content-Type")
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/sdp"));
    (is_sdp && !m.body.is_empty()).then(|| String::from_utf8_lossy(&m.body).into_owned())
}

pub(super) fn with_sdp(mut m: Message, sdp: Option<String>) -> Message {
    if let Some(s) = sdp {
        m.set_header("Content-Type", "application/sdp");
        m.body = s.into_bytes();
    }
    m
}

/// The user part of a SIP URI.
pub(super) fn user_of(uri: &str) -> Option<String> {
    UriRef::parse(uri).ok()?.user.map(str::to_string)
}

/// A non-SDP body of `from` (INFO payloads, ...), with its type, onto `to`.
pub(super) fn copy_body(from: &Message, to: &mut Message) {
    if from.body.is_empty() {
        return;
    }
    if let Some(t) = from.header("Content-Type") {
        to.set_header("Content-Type", t);
    }
    to.body = from.body.clone();
}
