//! Reading a prompt's WAV file into mono linear samples at its own rate:
//! integer PCM of 8 to 32 bits and float through `hound`; G.711 WAVs
//! (format tags 6, A-law, and 7, µ-law), which `hound` does not read,
//! through a short walk of the RIFF chunks and `tollgate-codec`.

use super::PromptError;
use std::path::Path;
use tollgate_codec::Law;

/// A WAV file's audio, down-mixed to mono.
#[derive(Debug)]
pub struct Audio {
    pub rate: u32,
    pub channels: u16,
    /// `pcm16`, `float32`, `pcmu`, ...
    pub format: String,
    /// Samples at full scale ±32768.
    pub mono: Vec<f32>,
}

/// Largest WAV file read.
const MAX_FILE: u64 = 256 << 20;

pub fn read_wav(path: &Path) -> Result<Audio, PromptError> {
    let io = |source| PromptError::Io {
        path: path.into(),
        source,
    };
    let format = |why: String| PromptError::Format {
        path: path.into(),
        why,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_FILE {
        return Err(format(format!("{len} bytes; at most {MAX_FILE} are read")));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let audio = match g711_wav(&bytes).map_err(format)? {
        Some(a) => a,
        None => pcm_wav(&bytes).map_err(format)?,
    };
    if audio.rate < 8000 || audio.rate > 192_000 {
        return Err(format(format!(
            "sample rate {} Hz; prompts are 8 to 192 kHz",
            audio.rate
        )));
    }
    Ok(audio)
}

fn pcm_wav(bytes: &[u8]) -> Result<Audio, String> {
    let reader =
        hound::WavReader::new(bytes).map_err(|e| format!("not a WAV file we read: {e}"))?;
    let spec = reader.spec();
    let (scale, format, samples): (f32, String, Result<Vec<f32>, hound::Error>) =
        match spec.sample_format {
            hound::SampleFormat::Float => (
                32767.0,
                format!("float{}", spec.bits_per_sample),
                reader.into_samples::<f32>().collect(),
            ),
            hound::SampleFormat::Int => (
                2f32.powi(16 - i32::from(spec.bits_per_sample)),
                format!("pcm{}", spec.bits_per_sample),
                reader
                    .into_samples::<i32>()
                    .map(|s| s.map(|v| v as f32))
                    .collect(),
            ),
        };
    let samples = samples.map_err(|e| format!("reading samples: {e}"))?;
    Ok(Audio {
        rate: spec.sample_rate,
        channels: spec.channels,
        format,
        mono: down_mix(&samples, spec.channels, scale),
    })
}

/// The frames of interleaved `samples`, averaged over `channels`, scaled.
fn down_mix(samples: &[f32], channels: u16, scale: f32) -> Vec<f32> {
    let n = usize::from(channels.max(1));
    samples
        .chunks_exact(n)
        .map(|frame| frame.iter().sum::<f32>() * scale / n as f32)
        .collect()
}

/// A G.711 WAV's audio; Ok(None) for any other format tag.
fn g711_wav(bytes: &[u8]) -> Result<Option<Audio>, String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut fmt = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let body = &bytes[at + 8..(at + 8).saturating_add(size).min(bytes.len())];
        match id {
            b"fmt " if body.len() >= 16 => {
                let le16 = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                let law = match le16(0) {
                    6 => Law::Pcma,
                    7 => Law::Pcmu,
                    _ => return Ok(None),
                };
                let rate = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
                fmt = Some((law, le16(2), rate));
            }
            b"data" => {
                let Some((law, channels, rate)) = fmt else {
                    return Err("data chunk before the fmt chunk".into());
                };
                let pcm: Vec<f32> = body.iter().map(|&c| f32::from(law.decode(c))).collect();
                return Ok(Some(Audio {
                    rate,
                    channels,
                    format: if law == Law::Pcmu { "pcmu" } else { "pcma" }.into(),
                    mono: down_mix(&pcm, channels, 1.0),
                }));
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = at.saturating_add(8 + size + (size & 1));
    }
    match fmt {
        Some(_) => Err("no data chunk".into()),
        None => Err("no fmt chunk".into()),
    }
}
