//! The per-process prompt cache: prompts loaded from WAV files by the
//! `prompt_load` control request, converted once to 8 kHz mono and encoded
//! once per G.711 law, and shared read-only (`Arc`) by every worker's
//! `prompt` stages. Loading and lookups happen on control threads when a
//! flow's stages are built, never on the packet path; a player holds its
//! prompt's bytes and reads slices of them per packet.

mod resample;
mod wav;

pub use resample::to_8k;
pub use wav::{read_wav, Audio};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tollgate_codec::Law;

/// Longest prompt accepted: 10 minutes at 8 kHz.
pub const MAX_SAMPLES: usize = 10 * 60 * 8000;

/// A cached prompt: its 8 kHz audio in each law.
#[derive(Debug)]
pub struct Prompt {
    pub pcmu: Arc<[u8]>,
    pub pcma: Arc<[u8]>,
}

impl Prompt {
    /// Encodes 8 kHz linear audio in both laws.
    pub fn new(pcm: &[i16]) -> Prompt {
        let encode = |law: Law| pcm.iter().map(|&s| law.encode(s)).collect::<Arc<[u8]>>();
        Prompt {
            pcmu: encode(Law::Pcmu),
            pcma: encode(Law::Pcma),
        }
    }

    pub fn encoded(&self, law: Law) -> &Arc<[u8]> {
        match law {
            Law::Pcmu => &self.pcmu,
            Law::Pcma => &self.pcma,
        }
    }
}

/// What `prompt_load` answers: what was read and what is cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptInfo {
    pub id: u32,
    pub path: PathBuf,
    /// The file's rate, channels and format, as read.
    pub source_rate: u32,
    pub source_channels: u16,
    pub source_format: String,
    /// Samples cached at 8 kHz.
    pub samples: usize,
    pub duration_ms: u64,
}

/// A prompt that could not be loaded: the file and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("prompt file {path}: {why}")]
    Format { path: PathBuf, why: String },
}

static CACHE: RwLock<BTreeMap<u32, Arc<Prompt>>> = RwLock::new(BTreeMap::new());

/// Reads `path`, converts and encodes it, and caches it as prompt `id`
/// (replacing a prompt of that id: players already running keep the old
/// audio until they are replaced).
pub fn load(id: u32, path: &Path) -> Result<PromptInfo, PromptError> {
    let audio = read_wav(path)?;
    let pcm = to_8k(&audio.mono, audio.rate);
    if pcm.len() > MAX_SAMPLES {
        return Err(PromptError::Format {
            path: path.into(),
            why: format!("{} s long; prompts may last 600 s", pcm.len() / 8000),
        });
    }
    let prompt = Arc::new(Prompt::new(&pcm));
    let mut cache = CACHE.write().unwrap_or_else(|p| p.into_inner());
    cache.insert(id, prompt);
    Ok(PromptInfo {
        id,
        path: path.into(),
        source_rate: audio.rate,
        source_channels: audio.channels,
        source_format: audio.format,
        samples: pcm.len(),
        duration_ms: pcm.len() as u64 / 8,
    })
}

/// Prompt `id`, if loaded.
pub fn get(id: u32) -> Option<Arc<Prompt>> {
    let cache = CACHE.read().unwrap_or_else(|p| p.into_inner());
    cache.get(&id).cloned()
}

/// Caches already-converted 8 kHz audio as prompt `id` (tests, benchmarks).
pub fn insert(id: u32, pcm: &[i16]) {
    let mut cache = CACHE.write().unwrap_or_else(|p| p.into_inner());
    cache.insert(id, Arc::new(Prompt::new(pcm)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tollgate-prompt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// A 1 kHz tone at `amp` of full scale, `secs` long, written as `spec`.
    fn write_tone(path: &Path, spec: hound::WavSpec, secs: f64) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        let frames = (f64::from(spec.sample_rate) * secs) as usize;
        for i in 0..frames {
            let v = 0.5
                * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(spec.sample_rate))
                    .sin();
            for _ in 0..spec.channels {
                match (spec.sample_format, spec.bits_per_sample) {
                    (hound::SampleFormat::Float, _) => w.write_sample(v as f32).unwrap(),
                    (_, 8) => w.write_sample((v * 127.0) as i8).unwrap(),
                    (_, bits) => w
                        .write_sample((v * f64::from((1 << (bits - 1)) - 1)) as i32)
                        .unwrap(),
                }
            }
        }
        w.finalize().unwrap();
    }

    /// The cached prompt decoded, against the 1 kHz tone rendered at 8 kHz:
    /// the best normalised correlation over a few samples of filter delay.
    fn correlation_with_tone(id: u32) -> f64 {
        let p = get(id).unwrap();
        let got: Vec<f64> = p
            .pcmu
            .iter()
            .map(|&c| f64::from(Law::Pcmu.decode(c)))
            .collect();
        let want = |i: usize| (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 8000.0).sin();
        let body = &got[400..got.len() - 400];
        let norm = body.iter().map(|v| v * v).sum::<f64>().sqrt()
            * (0..body.len()).map(|i| want(i).powi(2)).sum::<f64>().sqrt();
        (0..8)
            .map(|lag| {
                body.iter()
                    .enumerate()
                    .map(|(i, v)| v * want(i + 400 - lag))
                    .sum::<f64>()
                    / norm
            })
            .fold(f64::MIN, f64::max)
    }

    #[test]
    fn wavs_of_common_rates_and_formats_load_as_the_same_8k_prompt() {
        let int = |rate, bits, channels| hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let float = hound::WavSpec {
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
            ..int(48_000, 32, 1)
        };
        let specs = [
            int(8000, 16, 1),
            int(16_000, 16, 1),
            int(22_050, 8, 1),
            int(44_100, 16, 2),
            int(48_000, 24, 2),
            float,
        ];
        for (i, spec) in specs.into_iter().enumerate() {
            let path = temp(&format!("tone{i}.wav"));
            write_tone(&path, spec, 0.5);
            let id = 100 + i as u32;
            let info = load(id, &path).unwrap();
            assert_eq!(
                (info.source_rate, info.source_channels),
                (spec.sample_rate, spec.channels)
            );
            assert!((3990..=4000).contains(&info.samples), "{spec:?}: {info:?}");
            let c = correlation_with_tone(id);
            assert!(c > 0.98, "{spec:?}: correlation {c}");
        }
    }

    #[test]
    fn g711_wavs_load_and_bad_files_are_named() {
        for (tag, law, name) in [(7u16, Law::Pcmu, "pcmu"), (6, Law::Pcma, "pcma")] {
            let codes: Vec<u8> = (0..4000)
                .map(|i| {
                    law.encode(
                        (16000.0 * (2.0 * std::f64::consts::PI * i as f64 / 8.0).sin()) as i16,
                    )
                })
                .collect();
            let mut wav = b"RIFF\0\0\0\0WAVEfmt \x12\0\0\0".to_vec();
            for v in [tag, 1] {
                wav.extend_from_slice(&v.to_le_bytes());
            }
            wav.extend_from_slice(&8000u32.to_le_bytes());
            wav.extend_from_slice(&8000u32.to_le_bytes());
            wav.extend_from_slice(&[1, 0, 8, 0, 0, 0]);
            wav.extend_from_slice(b"data");
            wav.extend_from_slice(&(codes.len() as u32).to_le_bytes());
            wav.extend_from_slice(&codes);
            let path = temp(&format!("{name}.wav"));
            std::fs::write(&path, &wav).unwrap();
            let info = load(200 + u32::from(tag), &path).unwrap();
            assert_eq!((info.source_format.as_str(), info.samples), (name, 4000));
            assert!(correlation_with_tone(200 + u32::from(tag)) > 0.99);
        }
        let missing = load(1, Path::new("/nonexistent/x.wav"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("prompt file /nonexistent/x.wav:"),
            "{missing}"
        );
        let junk = temp("junk.wav");
        std::fs::write(&junk, b"not audio at all").unwrap();
        let e = load(1, &junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.wav") && e.contains("not a RIFF/WAVE file"),
            "{e}"
        );
        assert!(get(1).is_none(), "nothing cached for a failed load");
    }
}
