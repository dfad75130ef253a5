//! SDES and SRTP from the network: `a=crypto` values (RFC 4568) and
//! packets arriving at a transcrypt stage as SRTP or SRTCP.
//!
//! Properties: a crypto line that parses prints to text that parses to the
//! same line; unprotecting arbitrary bytes under every suite never panics
//! and never authenticates; RTP or RTCP that a context protects comes back
//! byte for byte from a receiving context with the same key.

use tollgate_dataplane::srtp::{Context, Keying, MasterKey, Suite};
use tollgate_sip::sdes::Crypto;

pub const TOKENS: &[&[u8]] = &[
    b"1 AES_CM_128_HMAC_SHA1_80 inline:",
    b"AEAD_AES_256_GCM",
    b"inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj",
    b"|2^31",
    b"|1:4",
    b"|1048576",
    b";inline:",
    b" UNENCRYPTED_SRTCP",
    b"=",
    b"\x80\x00",
    b"\x81\xc9\x00\x07",
    b"\x90",
    b"\xbe\xde\x00\x01",
    b"\xff",
];

pub fn crypto(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(c) = Crypto::parse(&text) else {
        return;
    };
    let printed = c.to_string();
    let again = Crypto::parse(&printed)
        .unwrap_or_else(|e| panic!("{printed:?} (from {text:?}) no longer parses: {e}"));
    assert_eq!(again, c, "{printed:?} parses to another line than {text:?}");
}

fn keying(suite: Suite) -> Keying {
    let bytes: Vec<u8> = (0..suite.key_len() + suite.salt_len())
        .map(|i| i as u8)
        .collect();
    Keying {
        suite,
        key: MasterKey::new(&bytes).expect("46 bytes at most"),
        mki: None,
        lifetime: None,
    }
}

pub fn packet(data: &[u8]) {
    for suite in Suite::ALL {
        let k = keying(suite);
        let mut rx = Context::new(&k);
        let mut buf = data.to_vec();
        assert!(
            rx.unprotect_rtp(&mut buf).is_err(),
            "{suite:?}: random bytes authenticated as SRTP"
        );
        let mut buf = data.to_vec();
        assert!(
            rx.unprotect_rtcp(&mut buf).is_err(),
            "{suite:?}: random bytes authenticated as SRTCP"
        );
        let mut tx = Context::new(&k);
        for rtcp in [false, true] {
            let extra = if rtcp {
                tx.rtcp_overhead()
            } else {
                tx.rtp_overhead()
            };
            let mut buf = data.to_vec();
            buf.resize(data.len() + extra, 0);
            let sealed = if rtcp {
                tx.protect_rtcp(&mut buf, data.len())
            } else {
                tx.protect_rtp(&mut buf, data.len())
            };
            if sealed.is_err() {
                continue;
            }
            let mut rx = Context::new(&k);
            let opened = if rtcp {
                rx.unprotect_rtcp(&mut buf)
            } else {
                rx.unprotect_rtp(&mut buf)
            };
            let n = opened
                .unwrap_or_else(|e| panic!("{suite:?} (rtcp {rtcp}): our own packet refused: {e}"));
            assert_eq!(
                &buf[..n],
                data,
                "{suite:?} (rtcp {rtcp}): not what was protected"
            );
        }
    }
}
