//! A MOS estimate for a leg from what the relay measured: packet loss,
//! interarrival jitter and, when RTCP gave one, the round trip to the
//! endpoint, through the ITU-T G.107 E-model at its default parameters:
//! R = 93.2 - Idd - Ie,eff, with Idd the delay impairment of G.107's
//! absolute-delay term and Ie,eff that of G.711 with packet-loss
//! concealment (Ie = 0, Bpl = 25.1, G.113 Appendix I) under random loss.
//! The talker-echo term is left at its value for the default echo loss
//! (folded into 93.2). It is an estimate for ranking calls, not a
//! listening test.

/// Codec and packetisation delay assumed on top of the network's, in ms.
const CODEC_DELAY_MS: f64 = 10.0;

/// What the estimate is made from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairments {
    /// Packets lost over packets expected, 0..=1.
    pub loss_ratio: f64,
    /// Interarrival jitter in ms; the receiver's jitter buffer is assumed
    /// twice as deep.
    pub jitter_ms: f64,
    /// Round trip to the endpoint in ms (RTCP LSR/DLSR), when known; half of
    /// it counts as one-way network delay. Unknown counts as none.
    pub rtt_ms: Option<f64>,
}

impl Impairments {
    /// Mouth-to-ear delay Ta in ms: network one way, jitter buffer, codec.
    pub fn one_way_delay_ms(&self) -> f64 {
        self.rtt_ms.unwrap_or(0.0).max(0.0) / 2.0 + 2.0 * self.jitter_ms.max(0.0) + CODEC_DELAY_MS
    }
}

/// G.107's delay impairment Idd for an absolute one-way delay of `ta_ms`.
pub fn delay_impairment(ta_ms: f64) -> f64 {
    if ta_ms <= 100.0 {
        return 0.0;
    }
    let x = (ta_ms / 100.0).log2();
    25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0) - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0)
        + 2.0)
}

/// The E-model's rating R (0 to 100) for `m`.
pub fn rating(m: &Impairments) -> f64 {
    let loss_pct = m.loss_ratio.clamp(0.0, 1.0) * 100.0;
    let loss_impairment = 95.0 * loss_pct / (loss_pct + 25.1);
    (93.2 - delay_impairment(m.one_way_delay_ms()) - loss_impairment).clamp(0.0, 100.0)
}

/// MOS (1.0 to 4.5, two decimals) for `m`, from R by G.107 Annex B.
pub fn mos(m: &Impairments) -> f64 {
    let r = rating(m);
    let m = 1.0 + 0.035 * r + 7.0e-6 * r * (r - 60.0) * (100.0 - r);
    (m.clamp(1.0, 4.5) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(loss_ratio: f64, jitter_ms: f64, rtt_ms: Option<f64>) -> f64 {
        mos(&Impairments {
            loss_ratio,
            jitter_ms,
            rtt_ms,
        })
    }

    #[test]
    fn clean_media_scores_high_and_loss_or_jitter_lower_it() {
        let clean = of(0.0, 0.0, None);
        assert_eq!(clean, 4.41);
        assert!(of(0.05, 0.0, None) < clean - 0.4, "{}", of(0.05, 0.0, None));
        assert!(of(0.0, 100.0, None) < of(0.0, 10.0, None));
        assert_eq!(of(1.0, 500.0, None), 1.0);
    }

    #[test]
    fn delay_follows_g107_idd() {
        // Idd is zero up to 100 ms, then G.107's curve: X = log2(Ta/100).
        assert_eq!(delay_impairment(100.0), 0.0);
        assert!(
            (delay_impairment(200.0) - 3.04).abs() < 0.01,
            "{}",
            delay_impairment(200.0)
        );
        assert!(
            (delay_impairment(400.0) - 24.07).abs() < 0.01,
            "{}",
            delay_impairment(400.0)
        );
        // A 300 ms round trip is 150 ms one way: it costs, unlike a short one.
        assert_eq!(of(0.0, 0.0, Some(20.0)), of(0.0, 0.0, None));
        assert!(of(0.0, 0.0, Some(300.0)) < of(0.0, 0.0, Some(20.0)));
        assert!(
            of(0.0, 0.0, Some(800.0)) < 4.0,
            "{}",
            of(0.0, 0.0, Some(800.0))
        );
    }
}
