//! Tone analysis of received audio: how much of a frequency a block of
//! 8 kHz samples holds (a Goertzel filter), for tests that check which
//! prompt or tone a peer heard.

/// The relative power of `hz` in 8 kHz audio `x` (1.0: all of it).
pub fn goertzel(x: &[f64], hz: f64) -> f64 {
    let c = 2.0 * (2.0 * std::f64::consts::PI * hz / 8000.0).cos();
    let (s1, s2) = x
        .iter()
        .fold((0.0, 0.0), |(s1, s2), &v| (v + c * s1 - s2, s1));
    let power = s1 * s1 + s2 * s2 - c * s1 * s2;
    let energy: f64 = x.iter().map(|v| v * v).sum();
    power / (energy * x.len() as f64 / 2.0).max(1.0)
}
