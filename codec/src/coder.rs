//! [`Codec`]: the audio codecs Tollgate transcodes between, named as SDP
//! names them, and one [`Encoder`] and [`Decoder`] type over all of them
//! (an enum, so a stage holds either inline and dispatch is a `match`).
//! Opus goes through libopus (Debian's libopus-dev) by the `opus` crate,
//! always mono at 48 kHz, 64 kbit/s for voice.

use crate::g711::Law;
use crate::g722::{G722Decoder, G722Encoder};
use crate::g729::{G729Decoder, G729Encoder, NoChannel};

/// Bit rate the Opus encoder is set to (RFC 7587 leaves it to the sender;
/// 64 kbit/s matches G.711's and G.722's).
pub const OPUS_BITRATE: i32 = 64_000;

/// What a coder could not do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    G729(#[from] NoChannel),
    #[error("libopus: {0}")]
    Opus(#[from] opus::Error),
    #[error("{codec}: {samples} samples is not a whole number of {frame}-sample frames")]
    PartialFrame {
        codec: &'static str,
        samples: usize,
        frame: usize,
    },
}

/// An audio codec by its SDP encoding name (as control requests name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Codec {
    #[serde(rename = "PCMU")]
    Pcmu,
    #[serde(rename = "PCMA")]
    Pcma,
    G722,
    G729,
    #[serde(rename = "opus")]
    Opus,
}

impl Codec {
    /// Every codec, in the order an offer lists those it adds.
    pub const ALL: [Codec; 5] = [
        Codec::Opus,
        Codec::G722,
        Codec::Pcmu,
        Codec::Pcma,
        Codec::G729,
    ];

    /// The codec an SDP `rtpmap` names (case-insensitive), at its clock rate.
    pub fn from_encoding(name: &str, clock_rate: u32) -> Option<Codec> {
        let codec = match name.to_ascii_uppercase().as_str() {
            "PCMU" => Codec::Pcmu,
            "PCMA" => Codec::Pcma,
            "G722" => Codec::G722,
            "G729" => Codec::G729,
            "OPUS" => Codec::Opus,
            _ => return None,
        };
        (codec.rtp_clock_rate() == clock_rate).then_some(codec)
    }

    /// Its SDP encoding name, as rtpengine writes it.
    pub fn encoding(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::G729 => "G729",
            Codec::Opus => "opus",
        }
    }

    /// Its RTP timestamp clock (G.722's is 8 kHz though it samples at 16).
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 8_000,
        }
    }

    /// The rate of the PCM it codes.
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::G722 => 16_000,
            Codec::Opus => 48_000,
            _ => 8_000,
        }
    }

    /// Its static RTP payload type (RFC 3551), if it has one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::G729 => Some(18),
            Codec::Opus => None,
        }
    }

    /// The codec of a static payload type.
    pub fn from_static_payload_type(pt: u8) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.static_payload_type() == Some(pt))
    }

    /// Whether `ms` of audio is a whole number of this codec's frames
    /// (G.729: 10 ms; Opus: 10, 20, 40 or 60 ms in one frame).
    pub fn takes_ptime(self, ms: u32) -> bool {
        match self {
            Codec::G729 => ms > 0 && ms.is_multiple_of(10),
            Codec::Opus => matches!(ms, 10 | 20 | 40 | 60),
            _ => ms > 0,
        }
    }

    /// Bytes one packet of `ms` takes at most.
    pub fn max_payload(self, ms: u32) -> usize {
        let ms = ms as usize;
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8 * ms,
            Codec::G729 => ms,
            // libopus's own ceiling for one frame, whatever the bit rate.
            Codec::Opus => 1275,
        }
    }

    pub fn law(self) -> Option<Law> {
        match self {
            Codec::Pcmu => Some(Law::Pcmu),
            Codec::Pcma => Some(Law::Pcma),
            _ => None,
        }
    }
}

/// One stream's encoder.
#[derive(Debug)]
pub enum Encoder {
    G711(Law),
    G722(Box<G722Encoder>),
    G729(G729Encoder),
    Opus(Box<opus::Encoder>),
}

impl Encoder {
    pub fn new(codec: Codec) -> Result<Encoder, Error> {
        Ok(match codec {
            Codec::Pcmu => Encoder::G711(Law::Pcmu),
            Codec::Pcma => Encoder::G711(Law::Pcma),
            Codec::G722 => Encoder::G722(Box::default()),
            Codec::G729 => Encoder::G729(G729Encoder::new()?),
            Codec::Opus => {
                let mut e =
                    opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)?;
                e.set_bitrate(opus::Bitrate::Bits(OPUS_BITRATE))?;
                Encoder::Opus(Box::new(e))
            }
        })
    }

    /// Encodes `pcm` (at the codec's sample rate, one packet's worth) into
    /// `out`; the bytes written.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, Error> {
        match self {
            Encoder::G711(law) => {
                law.encode_into(pcm, out);
                Ok(pcm.len().min(out.len()))
            }
            Encoder::G722(e) => Ok(e.encode(pcm, out)),
            Encoder::G729(e) => {
                whole_frames("G729", pcm.len(), crate::g729::FRAME_SAMPLES)?;
                Ok(e.encode(pcm, out))
            }
            Encoder::Opus(e) => Ok(e.encode(pcm, out)?),
        }
    }
}

fn whole_frames(codec: &'static str, samples: usize, frame: usize) -> Result<(), Error> {
    if samples.is_multiple_of(frame) {
        Ok(())
    } else {
        Err(Error::PartialFrame {
            codec,
            samples,
            frame,
        })
    }
}

/// One stream's decoder.
#[derive(Debug)]
pub enum Decoder {
    G711(Law),
    G722(Box<G722Decoder>),
    G729(G729Decoder),
    Opus(Box<opus::Decoder>),
}

impl Decoder {
    pub fn new(codec: Codec) -> Result<Decoder, Error> {
        Ok(match codec {
            Codec::Pcmu => Decoder::G711(Law::Pcmu),
            Codec::Pcma => Decoder::G711(Law::Pcma),
            Codec::G722 => Decoder::G722(Box::default()),
            Codec::G729 => Decoder::G729(G729Decoder::new()?),
            Codec::Opus => {
                Decoder::Opus(Box::new(opus::Decoder::new(48_000, opus::Channels::Mono)?))
            }
        })
    }

    /// Decodes one packet's `payload` into `out` (at the codec's sample
    /// rate); the samples written.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, Error> {
        match self {
            Decoder::G711(law) => {
                law.decode_into(payload, out);
                Ok(payload.len().min(out.len()))
            }
            Decoder::G722(d) => Ok(d.decode(payload, out)),
            Decoder::G729(d) => Ok(d.decode(payload, out)),
            Decoder::Opus(d) => Ok(d.decode(payload, out, false)?),
        }
    }
}
