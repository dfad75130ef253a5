//! [`Resampler`]: one stream's sample-rate conversion between the rates
//! the codecs run at (8, 16 and 48 kHz), by rubato's FFT resampler (a
//! well-kept crate made for the job: band-limited, fixed in and out block
//! sizes, no allocation once built). Audio goes through in 10 ms blocks,
//! the smallest frame any codec here has, so every packet is whole blocks.

use rubato::{FftFixedInOut, Resampler as _};

/// The block every conversion works in.
pub const BLOCK_MS: u32 = 10;

/// What is wrong with a conversion asked for.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot resample {from} Hz to {to} Hz: {reason}")]
    Rates { from: u32, to: u32, reason: String },
    #[error("{samples} samples at {rate} Hz is not a whole number of 10 ms blocks")]
    PartialBlock { samples: usize, rate: u32 },
}

/// Converts one stream from one rate to another (or copies it, at one rate).
pub struct Resampler {
    from: u32,
    to: u32,
    fft: Option<FftFixedInOut<f32>>,
    input: [Vec<f32>; 1],
    output: [Vec<f32>; 1],
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

fn block(rate: u32) -> usize {
    (rate * BLOCK_MS / 1000) as usize
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Result<Self, Error> {
        let fft = if from == to {
            None
        } else {
            let f =
                FftFixedInOut::new(from as usize, to as usize, block(from), 1).map_err(|e| {
                    Error::Rates {
                        from,
                        to,
                        reason: e.to_string(),
                    }
                })?;
            if f.input_frames_next() != block(from) {
                return Err(Error::Rates {
                    from,
                    to,
                    reason: "the ratio does not divide a 10 ms block".into(),
                });
            }
            Some(f)
        };
        Ok(Resampler {
            from,
            to,
            fft,
            input: [vec![0.0; block(from)]],
            output: [vec![0.0; block(to)]],
        })
    }

    /// Output samples the conversion lags its input by.
    pub fn delay(&self) -> usize {
        self.fft.as_ref().map_or(0, |f| f.output_delay())
    }

    /// Samples at the output rate that `samples` at the input rate become.
    pub fn output_len(&self, samples: usize) -> usize {
        samples * self.to as usize / self.from as usize
    }

    /// Converts `input` (whole 10 ms blocks) into `out`, as far as `out`
    /// holds whole blocks; the samples written.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> Result<usize, Error> {
        let (bin, bout) = (block(self.from), block(self.to));
        if !input.len().is_multiple_of(bin) {
            return Err(Error::PartialBlock {
                samples: input.len(),
                rate: self.from,
            });
        }
        let Some(fft) = self.fft.as_mut() else {
            let n = input.len().min(out.len());
            out[..n].copy_from_slice(&input[..n]);
            return Ok(n);
        };
        let mut written = 0;
        for (i, o) in input.chunks_exact(bin).zip(out.chunks_exact_mut(bout)) {
            for (f, &s) in self.input[0].iter_mut().zip(i) {
                *f = f32::from(s) / 32768.0;
            }
            // Sizes were fixed at construction: this cannot fail.
            if fft
                .process_into_buffer(&self.input, &mut self.output, None)
                .is_err()
            {
                break;
            }
            for (s, &f) in o.iter_mut().zip(&self.output[0]) {
                *s = (f * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            }
            written += bout;
        }
        Ok(written)
    }
}
