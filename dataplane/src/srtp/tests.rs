//! Round trips for every suite, and what a receiving context refuses:
//! tampering, replays, a foreign MKI, a spent key; ROC across a wrap.

use super::*;

fn keying(suite: Suite) -> Keying {
    let n = suite.key_len() + suite.salt_len();
    let bytes: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    Keying {
        suite,
        key: MasterKey::new(&bytes).unwrap(),
        mki: None,
        lifetime: None,
    }
}

fn rtp(seq: u16, payload: u8) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend(std::iter::repeat_n(payload, 160));
    p
}

fn protect(tx: &mut Context, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + tx.rtp_overhead(), 0);
    let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(n, buf.len());
    buf
}

fn unprotect(rx: &mut Context, srtp: &[u8]) -> Result<Vec<u8>, Error> {
    let mut buf = srtp.to_vec();
    let n = rx.unprotect_rtp(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn every_suite_round_trips_rtp_and_rtcp() {
    for suite in Suite::ALL {
        let k = keying(suite);
        k.check().unwrap();
        let (mut tx, mut rx) = (Context::new(&k), Context::new(&k));
        let plain = rtp(7, 0xd5);
        let srtp = protect(&mut tx, &plain);
        assert_eq!(srtp.len(), plain.len() + suite.rtp_tag_len());
        assert_eq!(srtp[..12], plain[..12], "{suite:?}: the header stays clear");
        assert_ne!(srtp[12..172], plain[12..], "{suite:?}: the payload is not");
        assert_eq!(unprotect(&mut rx, &srtp).unwrap(), plain, "{suite:?}");

        let rr = [
            0x81, 201, 0, 7, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let mut buf = rr.to_vec();
        buf.resize(rr.len() + tx.rtcp_overhead(), 0);
        tx.protect_rtcp(&mut buf, rr.len()).unwrap();
        assert_eq!(buf.len(), rr.len() + 4 + suite.rtcp_tag_len());
        assert_ne!(buf[8..16], rr[8..], "{suite:?}: the report is encrypted");
        let n = rx.unprotect_rtcp(&mut buf).unwrap();
        assert_eq!(&buf[..n], &rr[..], "{suite:?}");
    }
}

#[test]
fn tampered_replayed_and_foreign_packets_are_refused() {
    for suite in Suite::ALL {
        let k = keying(suite);
        let (mut tx, mut rx) = (Context::new(&k), Context::new(&k));
        let srtp = protect(&mut tx, &rtp(1, 0));
        let mut bad = srtp.clone();
        bad[20] ^= 1;
        assert_eq!(unprotect(&mut rx, &bad), Err(Error::Auth), "{suite:?}");
        unprotect(&mut rx, &srtp).unwrap();
        assert_eq!(unprotect(&mut rx, &srtp), Err(Error::Replayed), "{suite:?}");
        let other = Keying {
            key: MasterKey::new(&vec![9; k.key.bytes().len()]).unwrap(),
            ..k
        };
        let foreign = protect(&mut Context::new(&other), &rtp(2, 0));
        assert_eq!(unprotect(&mut rx, &foreign), Err(Error::Auth), "{suite:?}");
        assert_eq!(unprotect(&mut rx, &srtp[..8]), Err(Error::TooShort));
        let mut v1 = protect(&mut tx, &rtp(3, 0));
        v1[0] = 0x40;
        assert_eq!(unprotect(&mut rx, &v1), Err(Error::NotVersion2));
    }
}

#[test]
fn the_rollover_counter_carries_across_a_sequence_wrap() {
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AeadAes128Gcm] {
        let k = keying(suite);
        let (mut tx, mut rx) = (Context::new(&k), Context::new(&k));
        let seqs: Vec<u16> = (65530..=65535).chain(0..5).collect();
        let sent: Vec<Vec<u8>> = seqs
            .iter()
            .map(|&s| protect(&mut tx, &rtp(s, s as u8)))
            .collect();
        // Reordered around the wrap: 0 before 65535.
        let order = [0, 1, 2, 3, 4, 6, 5, 7, 8, 9, 10];
        for i in order {
            assert_eq!(
                unprotect(&mut rx, &sent[i]).unwrap(),
                rtp(seqs[i], seqs[i] as u8),
                "{suite:?} packet {i}"
            );
        }
        // A receiver that guessed ROC 0 for seq 3 would fail to authenticate.
        let fresh = unprotect(&mut Context::new(&k), &sent[9]);
        assert_eq!(
            fresh,
            Err(Error::Auth),
            "{suite:?}: ROC is part of the tag/nonce"
        );
    }
}

#[test]
fn an_mki_is_carried_and_checked_and_a_lifetime_runs_out() {
    let k = Keying {
        mki: Some(Mki { value: 1, len: 2 }),
        lifetime: Some(2),
        ..keying(Suite::AesCm128HmacSha1_32)
    };
    k.check().unwrap();
    let (mut tx, mut rx) = (Context::new(&k), Context::new(&k));
    let srtp = protect(&mut tx, &rtp(1, 0));
    assert_eq!(srtp.len(), 172 + 2 + 4);
    assert_eq!(srtp[172..174], [0, 1]);
    let mut other_mki = srtp.clone();
    other_mki[173] = 2;
    assert_eq!(unprotect(&mut rx, &other_mki), Err(Error::Mki));
    unprotect(&mut rx, &srtp).unwrap();
    protect(&mut tx, &rtp(2, 0));
    let mut buf = rtp(3, 0);
    buf.resize(172 + tx.rtp_overhead(), 0);
    assert_eq!(tx.protect_rtp(&mut buf, 172), Err(Error::KeyExpired));
}

#[test]
fn checks_name_what_is_wrong_and_keys_never_print() {
    let mut k = keying(Suite::Aes256CmHmacSha1_80);
    k.key = MasterKey::new(&[1; 30]).unwrap();
    assert!(k.check().unwrap_err().contains("46 bytes, not 30"));
    k = keying(Suite::AeadAes256Gcm);
    k.mki = Some(Mki { value: 300, len: 1 });
    assert!(k.check().unwrap_err().contains("MKI 300"));
    let shown = format!("{:?}", keying(Suite::AesCm128HmacSha1_80));
    assert!(shown.contains("redacted"), "{shown}");
    let json = serde_json::to_string(&keying(Suite::AesCm128HmacSha1_80)).unwrap();
    let back: Keying = serde_json::from_str(&json).unwrap();
    assert_eq!(back, keying(Suite::AesCm128HmacSha1_80));
    assert!(
        json.contains(r#""suite":"AES_CM_128_HMAC_SHA1_80""#),
        "{json}"
    );
}
