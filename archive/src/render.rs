//! WAV rendering of a closed recording: every leg's RTP from its captures,
//! G.711 decoded and laid on a timeline by RTP timestamp, written as 16-bit
//! 8 kHz WAV (through `hound`), one channel per leg or all legs mixed into
//! one.
//!
//! Each leg has its own timeline, and all start at the first packet of the
//! recording. A stream is anchored where its first packet arrived; later
//! packets go where their timestamp says, so lost or late packets leave
//! silence and reordering is undone. A new SSRC (a re-INVITE, a transfer) or
//! a timestamp that jumps more than [`REANCHOR_SAMPLES`] away from the
//! packet's arrival starts a new anchor at the arrival time. Packets of
//! payload types that are not G.711 (telephone-event, comfort noise,
//! anything not negotiated) are skipped and counted.

use crate::capture::{self, CaptureError, Datagram};
use crate::meta::{LegMeta, RecordingMeta};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use tollgate_codec::Law;
use tollgate_dataplane::wire::rtp;

/// G.711's sample rate.
pub const RATE: u32 = 8000;
/// How far (in samples, 2 s) a timestamp may stray from the packet's
/// arrival before the stream is anchored anew.
pub const REANCHOR_SAMPLES: i64 = 2 * RATE as i64;
/// The longest recording rendered (12 hours); samples beyond are dropped.
pub const MAX_SAMPLES: usize = 12 * 3600 * RATE as usize;

/// How the legs are laid out in the WAV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// One channel per leg, in `recording.json`'s order (stereo for two).
    #[default]
    PerLeg,
    /// All legs summed into one channel.
    Mixed,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("recording {recording}: WAV encoding: {detail}")]
    Wav { recording: String, detail: String },
}

/// A rendered recording.
#[derive(Debug)]
pub struct Rendered {
    pub wav: Vec<u8>,
    pub channels: u16,
    pub duration: Duration,
    /// The G.711 laws decoded, e.g. "PCMU" or "PCMA,PCMU".
    pub codec: String,
    /// RTP packets not placed: other payload types, not RTP, no leg, too late.
    pub skipped: u64,
}

/// One leg's audio being assembled.
#[derive(Default)]
struct Timeline {
    samples: Vec<i16>,
    anchor: Option<Anchor>,
}

struct Anchor {
    ssrc: u32,
    timestamp: u32,
    position: i64,
}

impl Timeline {
    /// Places one packet's samples; false when it could not be placed.
    fn place(&mut self, arrival: i64, packet: &rtp::Packet<&[u8]>, law: Law) -> bool {
        let (ssrc, ts) = (packet.ssrc(), packet.timestamp());
        let by_timestamp = match &self.anchor {
            Some(a) if a.ssrc == ssrc => {
                Some(a.position + i64::from(ts.wrapping_sub(a.timestamp) as i32))
            }
            _ => None,
        };
        let position = match by_timestamp {
            Some(p) if (p - arrival).abs() <= REANCHOR_SAMPLES => p,
            _ => {
                self.anchor = Some(Anchor {
                    ssrc,
                    timestamp: ts,
                    position: arrival,
                });
                arrival
            }
        };
        let payload = packet.payload();
        let Ok(start) = usize::try_from(position) else {
            return false;
        };
        let end = start + payload.len();
        if end > MAX_SAMPLES {
            return false;
        }
        if self.samples.len() < end {
            self.samples.resize(end, 0);
        }
        for (slot, &byte) in self.samples[start..end].iter_mut().zip(payload) {
            *slot = law.decode(byte);
        }
        true
    }
}

/// Renders the recording in `dir` (its captures and `meta`) into a WAV.
pub fn render(dir: &Path, meta: &RecordingMeta, layout: Layout) -> Result<Rendered, RenderError> {
    let mut datagrams = Vec::new();
    for name in &meta.captures {
        datagrams.extend(capture::read(&dir.join(name))?.datagrams);
    }
    datagrams.sort_by_key(|d| d.at);
    let start = datagrams.first().map_or(Duration::ZERO, |d| d.at);
    let mut timelines: Vec<Timeline> = meta.legs.iter().map(|_| Timeline::default()).collect();
    let mut laws = std::collections::BTreeSet::new();
    let mut skipped = 0;
    for d in &datagrams {
        match place(meta, &mut timelines, start, d) {
            Some(law) => {
                laws.insert(law.encoding());
            }
            None => skipped += 1,
        }
    }
    let channels = mix(timelines.into_iter().map(|t| t.samples).collect(), layout);
    let frames = channels.first().map_or(0, Vec::len);
    Ok(Rendered {
        wav: wav(&channels, frames).map_err(|e| RenderError::Wav {
            recording: meta.recording_id.clone(),
            detail: e.to_string(),
        })?,
        channels: channels.len() as u16,
        duration: Duration::from_millis(frames as u64 * 1000 / u64::from(RATE)),
        codec: laws.into_iter().collect::<Vec<_>>().join(","),
        skipped,
    })
}

/// Puts one datagram on its leg's timeline; the law it was decoded with.
fn place(
    meta: &RecordingMeta,
    timelines: &mut [Timeline],
    start: Duration,
    d: &Datagram,
) -> Option<Law> {
    let leg = leg_of(&meta.legs, d)?;
    let packet = rtp::Packet::new_checked(&d.payload[..]).ok()?;
    let codec = meta.legs[leg]
        .codecs
        .iter()
        .find(|c| c.payload_type == packet.payload_type())?;
    let law = Law::from_encoding(&codec.name, codec.clock_rate)?;
    let arrival = ((d.at - start).as_micros() as u64 * u64::from(RATE) / 1_000_000) as i64;
    timelines[leg].place(arrival, &packet, law).then_some(law)
}

/// The leg whose relay address the datagram was sent to; a leg recorded on
/// an unspecified address (0.0.0.0) matches by port.
fn leg_of(legs: &[LegMeta], d: &Datagram) -> Option<usize> {
    legs.iter()
        .position(|l| l.local == d.destination)
        .or_else(|| {
            legs.iter().position(|l| {
                l.local.ip().is_unspecified() && l.local.port() == d.destination.port()
            })
        })
}

/// Pads every leg to the longest and lays them out as asked.
fn mix(mut legs: Vec<Vec<i16>>, layout: Layout) -> Vec<Vec<i16>> {
    let frames = legs.iter().map(Vec::len).max().unwrap_or(0);
    for l in &mut legs {
        l.resize(frames, 0);
    }
    match layout {
        Layout::PerLeg if !legs.is_empty() => legs,
        _ => {
            let mut mixed = vec![0i32; frames];
            for l in &legs {
                for (m, &s) in mixed.iter_mut().zip(l) {
                    *m += i32::from(s);
                }
            }
            vec![mixed
                .into_iter()
                .map(|m| m.clamp(-32768, 32767) as i16)
                .collect()]
        }
    }
}

fn wav(channels: &[Vec<i16>], frames: usize) -> Result<Vec<u8>, hound::Error> {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + frames * channels.len() * 2));
    let mut w = hound::WavWriter::new(&mut out, spec)?;
    for i in 0..frames {
        for c in channels {
            w.write_sample(c[i])?;
        }
    }
    w.finalize()?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests;
