//! The stages a flow may carry: what a control request names
//! ([`StageSpec`]) and the per-flow state that runs it ([`Stage`]).
//!
//! Dispatch is a `match` over an enum, not a trait object: no vtable call and
//! no allocation per stage, and each stage's state sits inline in its flow.

mod drop_every;
mod rtcp_demux;
mod silence;
mod srtp;

pub use drop_every::DropEvery;
pub use rtcp_demux::RtcpDemux;
pub use silence::Silence;
pub use srtp::{Srtp, SrtpDropReason, SrtpDrops};

use super::{Cx, Payload, Verdict};
use crate::srtp::Keying;
use serde::{Deserialize, Serialize};

/// A stage as a flow names it in a control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StageSpec {
    /// Passes every packet on untouched: the pipeline's own cost, measured.
    Null,
    /// Drops every `n`th packet and reports each drop (a test of the contract).
    DropEvery { n: u32 },
    /// RTCP (RFC 5761 payload types 64-95) goes to the destination's port + 1.
    RtcpDemux,
    /// Replaces the stream with generated silence: received packets are
    /// consumed, and a G.711 silence packet leaves every `ptime_ms`.
    Silence {
        /// 0 (PCMU) or 8 (PCMA).
        #[serde(default)]
        payload_type: u8,
        /// Packet interval in ms, a multiple of the 20 ms timer tick.
        #[serde(default = "default_ptime")]
        ptime_ms: u32,
    },
    /// SRTP/SRTCP in, RTP/RTCP out: the first stage of a flow from an SRTP
    /// leg, with the key that leg's sender announced.
    SrtpDecrypt(Keying),
    /// RTP/RTCP in, SRTP/SRTCP out: the last stage of a flow towards an
    /// SRTP leg, with the key the relay announced to it.
    SrtpEncrypt(Keying),
}

fn default_ptime() -> u32 {
    20
}

impl StageSpec {
    /// What is wrong with this stage's parameters, if anything.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            StageSpec::DropEvery { n } if n < 1 => Err("drop_every: `n` must be at least 1".into()),
            StageSpec::Silence { payload_type, .. } if payload_type != 0 && payload_type != 8 => {
                Err(format!(
                    "silence: `payload_type` {payload_type} is not G.711 (0 PCMU or 8 PCMA)"
                ))
            }
            StageSpec::Silence { ptime_ms, .. }
                if ptime_ms == 0 || ptime_ms > 200 || ptime_ms % super::wheel::TICK_MS != 0 =>
            {
                Err(format!(
                    "silence: `ptime_ms` {ptime_ms} must be a multiple of {} up to 200",
                    super::wheel::TICK_MS
                ))
            }
            StageSpec::SrtpDecrypt(k) => k.check().map_err(|e| format!("srtp_decrypt: {e}")),
            StageSpec::SrtpEncrypt(k) => k.check().map_err(|e| format!("srtp_encrypt: {e}")),
            _ => Ok(()),
        }
    }
}

/// One stage's state on one flow.
#[derive(Debug)]
pub enum Stage {
    Null,
    DropEvery(DropEvery),
    RtcpDemux(RtcpDemux),
    Silence(Silence),
    SrtpDecrypt(Box<Srtp>),
    SrtpEncrypt(Box<Srtp>),
}

impl Stage {
    /// Fresh state for `spec` (checked beforehand); `seed` differs per flow.
    pub fn new(spec: &StageSpec, seed: u32) -> Stage {
        match *spec {
            StageSpec::Null => Stage::Null,
            StageSpec::DropEvery { n } => Stage::DropEvery(DropEvery::new(n)),
            StageSpec::RtcpDemux => Stage::RtcpDemux(RtcpDemux),
            StageSpec::Silence {
                payload_type,
                ptime_ms,
            } => Stage::Silence(Silence::new(payload_type, ptime_ms, seed)),
            StageSpec::SrtpDecrypt(k) => Stage::SrtpDecrypt(Box::new(Srtp::new(&k))),
            StageSpec::SrtpEncrypt(k) => Stage::SrtpEncrypt(Box::new(Srtp::new(&k))),
        }
    }

    /// Handles one received packet.
    pub fn process(&mut self, cx: &mut Cx, p: &mut Payload) -> Verdict {
        match self {
            Stage::Null => Verdict::Forward,
            Stage::DropEvery(s) => s.process(cx, p),
            Stage::RtcpDemux(s) => s.process(p),
            Stage::Silence(_) => Verdict::Drop(super::DropReason::Consumed),
            Stage::SrtpDecrypt(s) => s.decrypt(cx, p),
            Stage::SrtpEncrypt(s) => s.encrypt(cx, p),
        }
    }

    /// For an originating stage, its packet interval in ns.
    pub fn interval_ns(&self) -> Option<u64> {
        match self {
            Stage::Silence(s) => Some(s.interval_ns()),
            _ => None,
        }
    }

    /// Writes the next originated datagram into `buf`; its length, or None.
    pub fn originate(&mut self, buf: &mut [u8]) -> Option<usize> {
        match self {
            Stage::Silence(s) => s.originate(buf),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_read_as_control_requests_name_them() {
        let s: Vec<StageSpec> = serde_json::from_str(
            r#"[{"kind":"null"},{"kind":"drop_every","n":5},{"kind":"rtcp_demux"},{"kind":"silence"}]"#,
        )
        .unwrap();
        assert_eq!(
            s,
            vec![
                StageSpec::Null,
                StageSpec::DropEvery { n: 5 },
                StageSpec::RtcpDemux,
                StageSpec::Silence {
                    payload_type: 0,
                    ptime_ms: 20
                }
            ]
        );
        let srtp: StageSpec = serde_json::from_str(
            r#"{"kind":"srtp_encrypt","suite":"AEAD_AES_128_GCM","key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==","lifetime":1024}"#,
        )
        .unwrap();
        let StageSpec::SrtpEncrypt(k) = srtp else {
            panic!("{srtp:?}")
        };
        assert_eq!(k.key.bytes().len(), 28);
        assert_eq!(k.lifetime, Some(1024));
        assert!(srtp.check().is_ok());
        let json = serde_json::to_string(&srtp).unwrap();
        assert_eq!(serde_json::from_str::<StageSpec>(&json).unwrap(), srtp);
        assert!(
            !format!("{srtp:?}").contains("AAECAw"),
            "the key never prints"
        );
        let e = serde_json::from_str::<StageSpec>(r#"{"kind":"nul"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `nul`"), "{e}");
    }

    #[test]
    fn checks_name_the_parameter() {
        assert!(StageSpec::DropEvery { n: 0 }
            .check()
            .unwrap_err()
            .contains("`n`"));
        let bad_pt = StageSpec::Silence {
            payload_type: 9,
            ptime_ms: 20,
        };
        assert!(bad_pt.check().unwrap_err().contains("`payload_type` 9"));
        let bad_ptime = StageSpec::Silence {
            payload_type: 8,
            ptime_ms: 30,
        };
        assert!(bad_ptime.check().unwrap_err().contains("`ptime_ms` 30"));
        assert!(StageSpec::Null.check().is_ok());
    }
}
