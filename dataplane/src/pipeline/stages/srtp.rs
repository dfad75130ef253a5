//! `srtp_decrypt` and `srtp_encrypt`: the transcrypt stages. Decrypt runs
//! first on a flow whose sender speaks SRTP (SRTP in, RTP on to the other
//! stages), encrypt last on a flow whose receiver does (RTP in, SRTP out);
//! a flow between two SRTP legs carries both, each with its leg's key.
//! RTCP is told from RTP by its packet type (RFC 5761), so one stage serves
//! a muxed port, the RTCP port (+ 1) and RTCP split off by `rtcp_demux`.
//! A packet that fails (authentication, replay, a spent key, no room for
//! the tag) is dropped and counted by reason, and reported as an event at
//! the 1st, 2nd, 4th, 8th, ... drop of each reason; the keys live in the
//! [`Context`] and never print.

use super::rtcp_demux::is_rtcp;
use crate::pipeline::{Cx, DropReason, EventKind, Payload, Verdict};
use crate::srtp::{Context, Error, Keying};
use serde::{Deserialize, Serialize};

/// Why a transcrypt stage dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SrtpDropReason {
    /// The tag did not verify, or the MKI is not the key's.
    Auth,
    /// Seen before, or older than the replay window.
    Replayed,
    /// Too short, not version 2, or no room for the trailer.
    Malformed,
    /// The key's lifetime is used up.
    Expired,
}

/// Why a transcrypt stage dropped packets, counted per flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrtpDrops {
    pub auth: u64,
    pub replayed: u64,
    pub malformed: u64,
    pub expired: u64,
}

impl SrtpDrops {
    fn count(&mut self, cx: &mut Cx, e: Error) -> Verdict {
        let (reason, n) = match e {
            Error::Auth | Error::Mki => (SrtpDropReason::Auth, &mut self.auth),
            Error::Replayed | Error::TooOld => (SrtpDropReason::Replayed, &mut self.replayed),
            Error::TooShort | Error::NotVersion2 | Error::NoRoom => {
                (SrtpDropReason::Malformed, &mut self.malformed)
            }
            Error::KeyExpired => (SrtpDropReason::Expired, &mut self.expired),
        };
        *n += 1;
        if n.is_power_of_two() {
            cx.report(EventKind::SrtpDrop { reason, count: *n });
        }
        Verdict::Drop(DropReason::Stage)
    }
}

/// One transcrypt direction's state.
pub struct Srtp {
    context: Context,
    drops: SrtpDrops,
}

impl std::fmt::Debug for Srtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Srtp")
            .field("drops", &self.drops)
            .finish_non_exhaustive()
    }
}

impl Srtp {
    pub fn new(k: &Keying) -> Self {
        Srtp {
            context: Context::new(k),
            drops: SrtpDrops::default(),
        }
    }

    pub fn drops(&self) -> SrtpDrops {
        self.drops
    }

    /// SRTP or SRTCP in, RTP or RTCP out.
    pub fn decrypt(&mut self, cx: &mut Cx, p: &mut Payload) -> Verdict {
        let rtcp = is_rtcp(p.bytes());
        let buf = p.bytes_mut();
        let r = if rtcp {
            self.context.unprotect_rtcp(buf)
        } else {
            self.context.unprotect_rtp(buf)
        };
        match r {
            Ok(len) => {
                // Shorter than it was: always fits.
                let _ = p.set_len(len);
                Verdict::Forward
            }
            Err(e) => self.drops.count(cx, e),
        }
    }

    /// RTP or RTCP in, SRTP or SRTCP out, the trailer in the room after it.
    pub fn encrypt(&mut self, cx: &mut Cx, p: &mut Payload) -> Verdict {
        let len = p.len();
        let rtcp = is_rtcp(p.bytes());
        let overhead = if rtcp {
            self.context.rtcp_overhead()
        } else {
            self.context.rtp_overhead()
        };
        if p.set_len(len + overhead).is_err() {
            return self.drops.count(cx, Error::NoRoom);
        }
        let buf = p.bytes_mut();
        let r = if rtcp {
            self.context.protect_rtcp(buf, len)
        } else {
            self.context.protect_rtp(buf, len)
        };
        match r {
            Ok(_) => Verdict::Forward,
            Err(e) => {
                let _ = p.set_len(len);
                self.drops.count(cx, e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::{MasterKey, Suite};

    fn keying(fill: u8) -> Keying {
        Keying {
            suite: Suite::AesCm128HmacSha1_80,
            key: MasterKey::new(&[fill; 30]).unwrap(),
            mki: None,
            lifetime: None,
        }
    }

    fn through(stage: &mut Srtp, encrypt: bool, buf: &mut [u8], len: usize) -> (Verdict, Vec<u8>) {
        let (tx, _rx) = crossbeam_channel::bounded(8);
        let mut lost = 0;
        let mut cx = Cx {
            now_ns: 0,
            local: "127.0.0.1:1".parse().unwrap(),
            events: &tx,
            lost: &mut lost,
        };
        let mut p = Payload::new(buf, len);
        let v = if encrypt {
            stage.encrypt(&mut cx, &mut p)
        } else {
            stage.decrypt(&mut cx, &mut p)
        };
        (v, p.bytes().to_vec())
    }

    #[test]
    fn rtp_and_rtcp_go_through_encrypt_then_decrypt_unchanged() {
        let (mut enc, mut dec) = (Srtp::new(&keying(1)), Srtp::new(&keying(1)));
        let rtp = [
            0x80, 0, 0, 9, 0, 0, 1, 0, 0, 0, 0, 7, 0xd5, 0xd5, 0xd5, 0xd5,
        ];
        let rr = [0x81, 201, 0, 1, 0, 0, 0, 7];
        for plain in [&rtp[..], &rr[..]] {
            let mut buf = [0u8; 64];
            buf[..plain.len()].copy_from_slice(plain);
            let (v, sealed) = through(&mut enc, true, &mut buf, plain.len());
            assert_eq!(v, Verdict::Forward);
            assert!(sealed.len() > plain.len());
            let (v, opened) = through(&mut dec, false, &mut buf, sealed.len());
            assert_eq!((v, &opened[..]), (Verdict::Forward, plain));
        }
    }

    #[test]
    fn failures_drop_and_are_counted_by_reason() {
        let (mut enc, mut dec) = (Srtp::new(&keying(1)), Srtp::new(&keying(2)));
        let rtp = [0x80, 0, 0, 9, 0, 0, 1, 0, 0, 0, 0, 7, 0xd5, 0xd5];
        let mut buf = [0u8; 64];
        buf[..rtp.len()].copy_from_slice(&rtp);
        let (_, sealed) = through(&mut enc, true, &mut buf, rtp.len());
        let (v, _) = through(&mut dec, false, &mut buf, sealed.len());
        assert_eq!(v, Verdict::Drop(DropReason::Stage));
        let mut tight = rtp;
        let (v, kept) = through(&mut enc, true, &mut tight, rtp.len());
        assert_eq!(v, Verdict::Drop(DropReason::Stage), "no room for the tag");
        assert_eq!(kept, rtp, "the packet is left as it was");
        assert_eq!(dec.drops().auth, 1);
        assert_eq!(enc.drops().malformed, 1);
        assert!(
            !format!("{enc:?}").contains("context"),
            "no key state printed"
        );
    }
}
