//! The stages a flow may carry: what a control request names
//! ([`StageSpec`]) and the per-flow state that runs it ([`Stage`]).
//!
//! Dispatch is a `match` over an enum, not a trait object: no vtable call and
//! no allocation per stage, and each stage's state sits inline in its flow.

mod drop_every;
pub mod dtmf;
mod dtmf_inband;
mod dtmf_send;
mod player;
mod rtcp_demux;
mod rtp_out;
mod silence;
mod srtp;
mod tap;
#[cfg(test)]
mod test_events;
pub mod tone;
mod transcode;

pub use drop_every::DropEvery;
pub use dtmf::DtmfDetect;
pub use dtmf_inband::DtmfInband;
pub use dtmf_send::{DigitSpec, DtmfSend};
pub use player::{AfterPrompt, Player};
pub use rtcp_demux::{is_rtcp, RtcpDemux};
pub use silence::Silence;
pub use srtp::{Srtp, SrtpDropReason, SrtpDrops};
pub use tap::Tap;
pub use tone::{Tone, ToneSpec};
pub use transcode::{EventMap, Side, Transcode, TranscodeCounters, TranscodeSpec};

use super::{Cx, DropReason, Payload, Verdict};
use crate::srtp::Keying;
use serde::{Deserialize, Serialize};
use tollgate_codec::Law;

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
    /// Plays a tone cadence (`ringback`, `busy`, `beep` or FreeSWITCH's
    /// `%(on_ms,off_ms,f1,f2)` segments joined by `;`) as G.711.
    Tone {
        tone: ToneSpec,
        /// 0 (PCMU) or 8 (PCMA).
        #[serde(default)]
        payload_type: u8,
        #[serde(default = "default_ptime")]
        ptime_ms: u32,
        /// Cadences played, then `tone_done` and no more packets; 0: forever.
        #[serde(default)]
        repeat: u32,
        /// Whether received packets end here (true) or go on.
        #[serde(default = "yes")]
        consume: bool,
    },
    /// Plays prompt `prompt` from the prompt cache (`prompt_load`) as G.711.
    Prompt {
        prompt: u32,
        #[serde(default)]
        payload_type: u8,
        #[serde(default = "default_ptime")]
        ptime_ms: u32,
        /// Plays, then `prompt_done`; 0: forever.
        #[serde(default = "one")]
        repeat: u32,
        /// After the last play: `stop` or `silence`.
        #[serde(default)]
        then: AfterPrompt,
        #[serde(default = "yes")]
        consume: bool,
    },
    /// Reports RFC 4733 DTMF digits as `dtmf` events; audio goes on.
    DtmfDetect {
        /// The telephone-event payload type negotiated.
        #[serde(default = "default_event_pt")]
        payload_type: u8,
        /// Whether telephone-event packets end here (true) or go on.
        #[serde(default)]
        consume: bool,
    },
    /// Reports DTMF heard in the G.711 audio itself as `dtmf` events;
    /// packets go on.
    DtmfInband {
        /// The audio's payload type: 0 (PCMU) or 8 (PCMA).
        #[serde(default)]
        payload_type: u8,
    },
    /// Sends one DTMF digit as RFC 4733 telephone-events; received packets go on.
    DtmfSend(DigitSpec),
    /// SRTP/SRTCP in, RTP/RTCP out: the first stage of a flow from an SRTP
    /// leg, with the key that leg's sender announced.
    SrtpDecrypt(Keying),
    /// RTP/RTCP in, SRTP/SRTCP out: the last stage of a flow towards an
    /// SRTP leg, with the key the relay announced to it.
    SrtpEncrypt(Keying),
    /// Copies every packet as received to the recorder, for the recording
    /// `recording` (a number `recording_open` gave).
    Tap { recording: u32 },
    /// Decodes the sender's codec and sends the receiver's (resampled,
    /// repacketised), telephone-events mapped.
    Transcode(TranscodeSpec),
}

/// Where a stage sits in a flow's chain, in the order packets meet them:
/// the one place the order is written down. [`StageSpec::place_in`] keeps
/// a chain in this order; a tap sees packets after demux and decryption
/// and before any stage that rewrites or replaces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// RTP/RTCP/STUN/DTLS told apart.
    Demux,
    /// SRTP to RTP.
    Decrypt,
    /// Stages that measure or listen to the stream and leave it as it is.
    Observe,
    /// A copy to the recorder.
    Tap,
    /// What ends, replaces or adds to the stream (players, tones, silence,
    /// DTMF sent).
    Endpoint,
    /// The sender's codec to the receiver's, last before encryption.
    Transcode,
    /// RTP to SRTP.
    Encrypt,
}

pub(super) fn default_ptime() -> u32 {
    20
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

pub(super) fn default_event_pt() -> u8 {
    101
}

/// Most plays a finite `repeat` may ask for.
const MAX_REPEAT: u32 = 10_000;

/// What is wrong with a G.711 stream's payload type or ptime, if anything.
fn check_g711(stage: &str, payload_type: u8, ptime_ms: u32) -> Result<(), String> {
    if Law::from_payload_type(payload_type).is_none() {
        return Err(format!(
            "{stage}: `payload_type` {payload_type} is not G.711 (0 PCMU or 8 PCMA)"
        ));
    }
    check_ptime(stage, ptime_ms)
}

pub(super) fn check_ptime(stage: &str, ptime_ms: u32) -> Result<(), String> {
    if ptime_ms == 0 || ptime_ms > 200 || !ptime_ms.is_multiple_of(super::wheel::TICK_MS) {
        return Err(format!(
            "{stage}: `ptime_ms` {ptime_ms} must be a multiple of {} up to 200",
            super::wheel::TICK_MS
        ));
    }
    Ok(())
}

fn check_repeat(stage: &str, repeat: u32) -> Result<(), String> {
    if repeat > MAX_REPEAT {
        return Err(format!("{stage}: `repeat` {repeat} is over {MAX_REPEAT}"));
    }
    Ok(())
}

pub(super) fn check_event_pt(stage: &str, payload_type: u8) -> Result<(), String> {
    if !(96..=127).contains(&payload_type) {
        return Err(format!(
            "{stage}: `payload_type` {payload_type} is not a dynamic payload type (96-127)"
        ));
    }
    Ok(())
}

impl StageSpec {
    pub fn place(&self) -> Place {
        match self {
            StageSpec::RtcpDemux => Place::Demux,
            StageSpec::SrtpDecrypt(_) => Place::Decrypt,
            StageSpec::Null
            | StageSpec::DropEvery { .. }
            | StageSpec::DtmfDetect { .. }
            | StageSpec::DtmfInband { .. } => Place::Observe,
            StageSpec::Tap { .. } => Place::Tap,
            StageSpec::Silence { .. }
            | StageSpec::Tone { .. }
            | StageSpec::Prompt { .. }
            | StageSpec::DtmfSend(_) => Place::Endpoint,
            StageSpec::Transcode(_) => Place::Transcode,
            StageSpec::SrtpEncrypt(_) => Place::Encrypt,
        }
    }

    /// Puts this stage into `chain` after every stage whose place comes
    /// before or with its own, and before the rest.
    pub fn place_in(self, chain: &mut Vec<StageSpec>) {
        let at = chain
            .iter()
            .position(|s| s.place() > self.place())
            .unwrap_or(chain.len());
        chain.insert(at, self);
    }

    /// What is wrong with this stage's parameters, if anything.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            StageSpec::DropEvery { n } if n < 1 => Err("drop_every: `n` must be at least 1".into()),
            StageSpec::Silence {
                payload_type,
                ptime_ms,
            } => check_g711("silence", payload_type, ptime_ms),
            StageSpec::Tone {
                payload_type,
                ptime_ms,
                repeat,
                ..
            } => check_g711("tone", payload_type, ptime_ms)
                .and_then(|()| check_repeat("tone", repeat)),
            StageSpec::Prompt {
                prompt,
                payload_type,
                ptime_ms,
                repeat,
                ..
            } => {
                check_g711("prompt", payload_type, ptime_ms)?;
                check_repeat("prompt", repeat)?;
                match crate::prompt::get(prompt) {
                    Some(_) => Ok(()),
                    None => Err(format!(
                        "prompt: `prompt` {prompt} is not loaded (load it with prompt_load)"
                    )),
                }
            }
            StageSpec::DtmfDetect { payload_type, .. } => {
                check_event_pt("dtmf_detect", payload_type)
            }
            StageSpec::DtmfInband { payload_type } => check_g711("dtmf_inband", payload_type, 20),
            StageSpec::DtmfSend(d) => d.check(),
            StageSpec::SrtpDecrypt(k) => k.check().map_err(|e| format!("srtp_decrypt: {e}")),
            StageSpec::SrtpEncrypt(k) => k.check().map_err(|e| format!("srtp_encrypt: {e}")),
            StageSpec::Transcode(t) => t.check(),
            StageSpec::Tap { recording: 0 } => {
                Err("tap: `recording` must be a number recording_open gave (from 1)".into())
            }
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
    /// Boxed: a cadence with its oscillators is several times the size of
    /// the other stages.
    Tone {
        tone: Box<Tone>,
        consume: bool,
    },
    Player {
        player: Player,
        consume: bool,
    },
    DtmfDetect(DtmfDetect),
    DtmfInband(DtmfInband),
    DtmfSend(DtmfSend),
    SrtpDecrypt(Box<Srtp>),
    SrtpEncrypt(Box<Srtp>),
    Tap(Tap),
    Transcode(Box<Transcode>),
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
            StageSpec::Tone {
                tone,
                payload_type,
                ptime_ms,
                repeat,
                consume,
            } => Stage::Tone {
                tone: Box::new(Tone::new(tone, law(payload_type), ptime_ms, repeat, seed)),
                consume,
            },
            StageSpec::Prompt {
                prompt,
                payload_type,
                ptime_ms,
                repeat,
                then,
                consume,
            } => Stage::Player {
                player: Player::new(prompt, law(payload_type), ptime_ms, repeat, then, seed),
                consume,
            },
            StageSpec::DtmfDetect {
                payload_type,
                consume,
            } => Stage::DtmfDetect(DtmfDetect::new(payload_type, consume)),
            StageSpec::DtmfInband { payload_type } => {
                Stage::DtmfInband(DtmfInband::new(payload_type))
            }
            StageSpec::DtmfSend(d) => Stage::DtmfSend(DtmfSend::new(&d, seed)),
            StageSpec::SrtpDecrypt(k) => Stage::SrtpDecrypt(Box::new(Srtp::new(&k))),
            StageSpec::SrtpEncrypt(k) => Stage::SrtpEncrypt(Box::new(Srtp::new(&k))),
            StageSpec::Tap { recording } => Stage::Tap(Tap::new(recording)),
            StageSpec::Transcode(t) => Stage::Transcode(Box::new(Transcode::new(&t))),
        }
    }

    /// Handles one received packet.
    pub fn process(&mut self, cx: &mut Cx, p: &mut Payload) -> Verdict {
        match self {
            Stage::Null => Verdict::Forward,
            Stage::DropEvery(s) => s.process(cx, p),
            Stage::RtcpDemux(s) => s.process(p),
            Stage::Silence(_) => Verdict::Drop(DropReason::Consumed),
            Stage::Tone { consume: true, .. } | Stage::Player { consume: true, .. } => {
                Verdict::Drop(DropReason::Consumed)
            }
            Stage::Tone { .. } | Stage::Player { .. } | Stage::DtmfSend(_) => Verdict::Forward,
            Stage::DtmfDetect(s) => s.process(cx, p),
            Stage::DtmfInband(s) => s.process(cx, p),
            Stage::SrtpDecrypt(s) => s.decrypt(cx, p),
            Stage::SrtpEncrypt(s) => s.encrypt(cx, p),
            Stage::Tap(s) => s.process(cx, p),
            Stage::Transcode(s) => s.process(cx, p),
        }
    }

    /// For an originating stage, its packet interval in ns.
    pub fn interval_ns(&self) -> Option<u64> {
        match self {
            Stage::Silence(s) => Some(s.interval_ns()),
            Stage::Tone { tone, .. } => Some(tone.interval_ns()),
            Stage::Player { player, .. } => Some(player.interval_ns()),
            Stage::DtmfSend(s) => Some(s.interval_ns()),
            Stage::Transcode(s) => s.interval_ns(),
            _ => None,
        }
    }

    /// Writes the next originated datagram into `buf`; its length, or None.
    pub fn originate(&mut self, cx: &mut Cx, buf: &mut [u8]) -> Option<usize> {
        match self {
            Stage::Silence(s) => s.originate(buf),
            Stage::Tone { tone, .. } => tone.originate(cx, buf),
            Stage::Player { player, .. } => player.originate(cx, buf),
            Stage::DtmfSend(s) => s.originate(buf),
            Stage::Transcode(s) => s.originate(buf),
            _ => None,
        }
    }
}

/// The law of a checked G.711 payload type.
fn law(payload_type: u8) -> Law {
    Law::from_payload_type(payload_type).unwrap_or(Law::Pcmu)
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

    #[test]
    fn media_endpoint_specs_read_with_defaults_and_checks_name_the_field() {
        let s: Vec<StageSpec> = serde_json::from_str(
            r##"[{"kind":"dtmf_detect"},{"kind":"tone","tone":"ringback"},{"kind":"dtmf_send","digit":"#"}]"##,
        )
        .unwrap();
        assert_eq!(
            s[0],
            StageSpec::DtmfDetect {
                payload_type: 101,
                consume: false
            }
        );
        assert!(matches!(
            s[1],
            StageSpec::Tone {
                payload_type: 0,
                ptime_ms: 20,
                repeat: 0,
                consume: true,
                ..
            }
        ));
        assert!(matches!(
            s[2],
            StageSpec::DtmfSend(DigitSpec {
                digit: '#',
                duration_ms: 100,
                ..
            })
        ));
        let e =
            serde_json::from_str::<StageSpec>(r#"{"kind":"tone","tone":"%(1,2)"}"#).unwrap_err();
        assert!(e.to_string().contains("tone \"%(1,2)\""), "{e}");
        let unloaded = StageSpec::Prompt {
            prompt: 77_777,
            payload_type: 0,
            ptime_ms: 20,
            repeat: 1,
            then: AfterPrompt::Stop,
            consume: true,
        };
        assert!(unloaded
            .check()
            .unwrap_err()
            .contains("`prompt` 77777 is not loaded"));
        let bad_digit =
            serde_json::from_str::<StageSpec>(r#"{"kind":"dtmf_send","digit":"x"}"#).unwrap();
        assert!(bad_digit.check().unwrap_err().contains("`digit` 'x'"));
        let bad_pt = StageSpec::DtmfDetect {
            payload_type: 0,
            consume: true,
        };
        assert!(bad_pt.check().unwrap_err().contains("`payload_type` 0"));
    }

    #[test]
    fn srtp_specs_read_and_never_print_their_key() {
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
    }

    #[test]
    fn a_tap_needs_a_recording_number() {
        let tap0 = StageSpec::Tap { recording: 0 }.check().unwrap_err();
        assert!(tap0.contains("`recording`"), "{tap0}");
    }

    #[test]
    fn a_tap_goes_after_demux_and_before_endpoints() {
        let silence = StageSpec::Silence {
            payload_type: 0,
            ptime_ms: 20,
        };
        let mut chain = vec![StageSpec::RtcpDemux, StageSpec::Null, silence];
        StageSpec::Tap { recording: 3 }.place_in(&mut chain);
        assert_eq!(
            chain,
            [
                StageSpec::RtcpDemux,
                StageSpec::Null,
                StageSpec::Tap { recording: 3 },
                silence
            ]
        );
        let mut bare = Vec::new();
        StageSpec::Tap { recording: 3 }.place_in(&mut bare);
        StageSpec::RtcpDemux.place_in(&mut bare);
        assert_eq!(
            bare,
            [StageSpec::RtcpDemux, StageSpec::Tap { recording: 3 }]
        );
        let tap: StageSpec = serde_json::from_str(r#"{"kind":"tap","recording":3}"#).unwrap();
        assert_eq!(tap, StageSpec::Tap { recording: 3 });
    }
}
