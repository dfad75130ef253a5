//! A MOS estimate for a CDR from what the relay measured: packet loss and
//! interarrival jitter, through a reduced ITU-T G.107 E-model: the usual
//! one-way-delay term, and the effective equipment impairment of G.711
//! with packet-loss concealment (Ie = 0, Bpl = 25.1) under random loss.
//! It is an estimate for ranking calls, not a listening test.

/// MOS (1.0 to 4.5) for `loss_ratio` (0..=1) and `jitter_ms`, assuming a
/// jitter buffer twice the jitter deep and 10 ms of codec delay.
pub fn mos(loss_ratio: f64, jitter_ms: f64) -> f64 {
    let delay = 2.0 * jitter_ms.max(0.0) + 10.0;
    let delay_impairment = if delay < 160.0 {
        delay / 40.0
    } else {
        (delay - 120.0) / 10.0
    };
    let loss_pct = loss_ratio.clamp(0.0, 1.0) * 100.0;
    let loss_impairment = 95.0 * loss_pct / (loss_pct + 25.1);
    let r = (93.2 - delay_impairment - loss_impairment).clamp(0.0, 100.0);
    let m = 1.0 + 0.035 * r + 7.0e-6 * r * (r - 60.0) * (100.0 - r);
    (m.clamp(1.0, 4.5) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::mos;

    #[test]
    fn clean_media_scores_high_and_loss_or_jitter_lower_it() {
        let clean = mos(0.0, 0.0);
        assert!(clean > 4.3 && clean <= 4.5, "{clean}");
        assert!(mos(0.05, 0.0) < clean - 0.4, "{}", mos(0.05, 0.0));
        assert!(mos(0.0, 100.0) < mos(0.0, 10.0));
        assert_eq!(mos(1.0, 500.0), 1.0);
    }
}
