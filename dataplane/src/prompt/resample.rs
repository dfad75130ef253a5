//! Conversion of a prompt to 8 kHz: a direct windowed-sinc resampler.
//!
//! Each output sample is the input convolved with a Blackman-windowed sinc
//! low-pass at 3.6 kHz (below the 4 kHz Nyquist of 8 kHz audio, above the
//! 3.4 kHz telephone band), centred on the output instant, 16 zero
//! crossings each side. It runs once per prompt, at load time, on the whole
//! file, so a direct evaluation with any rate ratio is simple and exact;
//! rubato, the crate for resampling, is built for streaming in fixed chunks
//! with FFT dependencies, which buys nothing here. 8 kHz input is passed
//! through unfiltered.

/// The low-pass edge, Hz.
const CUTOFF_HZ: f64 = 3600.0;
/// Zero crossings of the sinc kept on each side.
const ZEROS: f64 = 16.0;

/// `input` (full scale ±32768) at `rate` Hz as 8 kHz 16-bit samples.
pub fn to_8k(input: &[f32], rate: u32) -> Vec<i16> {
    let clamp = |v: f64| v.round().clamp(-32768.0, 32767.0) as i16;
    if rate == 8000 {
        return input.iter().map(|&v| clamp(f64::from(v))).collect();
    }
    let step = f64::from(rate) / 8000.0;
    // The filter in input samples: cutoff as a fraction of the input rate.
    let fc = (CUTOFF_HZ / f64::from(rate)).min(0.45);
    let half = ZEROS / (2.0 * fc);
    let out_len = (input.len() as f64 / step).floor() as usize;
    (0..out_len)
        .map(|n| {
            let t = n as f64 * step;
            let first = (t - half).ceil().max(0.0) as usize;
            let last = ((t + half).floor() as usize).min(input.len() - 1);
            let v: f64 = (first..=last)
                .map(|k| f64::from(input[k]) * kernel(t - k as f64, fc, half))
                .sum();
            clamp(v)
        })
        .collect()
}

/// The windowed-sinc low-pass at offset `x` input samples.
fn kernel(x: f64, fc: f64, half: f64) -> f64 {
    use std::f64::consts::PI;
    let sinc = if x == 0.0 {
        2.0 * fc
    } else {
        (2.0 * PI * fc * x).sin() / (PI * x)
    };
    let u = x / half;
    let window = 0.42 + 0.5 * (PI * u).cos() + 0.08 * (2.0 * PI * u).cos();
    sinc * window
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, rate: u32, secs: f64, amp: f64) -> Vec<f32> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin()) as f32
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn passes_the_voice_band_and_stops_what_would_alias() {
        for rate in [11_025, 16_000, 22_050, 44_100, 48_000] {
            let kept = to_8k(&sine(1000.0, rate, 1.0, 10_000.0), rate);
            assert_eq!(kept.len(), 8000, "{rate} Hz");
            // Past the filter's edges, a 1 kHz tone keeps its level (10000/sqrt 2).
            let level = rms(&kept[200..7800]);
            assert!(
                (level - 7071.0).abs() < 150.0,
                "{rate} Hz: 1 kHz at {level}"
            );
            // A 5 kHz tone would fold to 3 kHz at 8 kHz; it must be gone.
            if rate >= 11_025 {
                let folded = to_8k(&sine(5000.0, rate, 1.0, 10_000.0), rate);
                let level = rms(&folded[200..folded.len() - 200]);
                assert!(level < 30.0, "{rate} Hz: 5 kHz leaks at {level}");
            }
        }
        let same: Vec<f32> = vec![1.0, -2.0, 40_000.0];
        assert_eq!(to_8k(&same, 8000), vec![1, -2, 32767]);
    }
}
