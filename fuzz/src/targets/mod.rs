//! The fuzz targets, one per parser (or per way into one), each a plain
//! `fn(&[u8])` so the proptest pass and the AFL++ harness run the same
//! code. A target panics exactly when a property of its parser breaks.

pub mod control;
pub mod ng;
pub mod sdp;
pub mod sip;
pub mod spool;
pub mod srtp;
pub mod wire;

use crate::Target;

pub const ALL: &[Target] = &[
    Target {
        name: "sip_message",
        tokens: sip::TOKENS,
        run: sip::message,
        weight: 8,
    },
    Target {
        name: "sip_digest",
        tokens: sip::TOKENS,
        run: sip::digest,
        weight: 2,
    },
    Target {
        name: "sdp",
        tokens: sdp::TOKENS,
        run: sdp::sdp,
        weight: 8,
    },
    Target {
        name: "ng_bencode",
        tokens: ng::TOKENS,
        run: ng::bencode,
        weight: 4,
    },
    Target {
        name: "ng_json",
        tokens: ng::TOKENS,
        run: ng::json,
        weight: 4,
    },
    Target {
        name: "ng_message",
        tokens: ng::TOKENS,
        run: ng::message,
        weight: 4,
    },
    Target {
        name: "frame",
        tokens: wire::TOKENS,
        run: wire::frame,
        weight: 8,
    },
    Target {
        name: "rtp",
        tokens: wire::TOKENS,
        run: wire::payload,
        weight: 4,
    },
    Target {
        name: "control",
        tokens: control::TOKENS,
        run: control::control,
        weight: 4,
    },
    Target {
        name: "spool_segment",
        tokens: spool::TOKENS,
        run: spool::segment,
        weight: 4,
    },
    Target {
        name: "spool",
        tokens: spool::TOKENS,
        run: spool::spool,
        weight: 1,
    },
    Target {
        name: "spool_cursor",
        tokens: spool::TOKENS,
        run: spool::cursor,
        weight: 1,
    },
    Target {
        name: "sdes_crypto",
        tokens: srtp::TOKENS,
        run: srtp::crypto,
        weight: 4,
    },
    Target {
        name: "srtp",
        tokens: srtp::TOKENS,
        run: srtp::packet,
        weight: 1,
    },
];

/// The target named `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    ALL.iter().find(|t| t.name == name)
}
