//! G.711 (ITU-T) µ-law and A-law sample conversion, both directions: the
//! archive decodes recorded PCMU/PCMA payloads into 16-bit linear audio, and
//! tests encode tones with the same tables. Hand-written: each direction is a
//! dozen lines of the standard's segment arithmetic, smaller than any crate's
//! interface to it.

/// One of the two G.711 companding laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// µ-law, RTP payload type 0 ("PCMU").
    Mu,
    /// A-law, RTP payload type 8 ("PCMA").
    A,
}

impl Law {
    /// The law an SDP encoding name stands for, if it is G.711 at 8 kHz.
    pub fn from_encoding(name: &str, clock_rate: u32) -> Option<Law> {
        if clock_rate != 8000 {
            return None;
        }
        match name.to_ascii_uppercase().as_str() {
            "PCMU" => Some(Law::Mu),
            "PCMA" => Some(Law::A),
            _ => None,
        }
    }

    pub fn encoding(self) -> &'static str {
        match self {
            Law::Mu => "PCMU",
            Law::A => "PCMA",
        }
    }

    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Law::Mu => ulaw_to_linear(byte),
            Law::A => alaw_to_linear(byte),
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => linear_to_ulaw(sample),
            Law::A => linear_to_alaw(sample),
        }
    }
}

const MU_BIAS: i32 = 0x84;

fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + MU_BIAS) << exponent) - MU_BIAS;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

fn linear_to_ulaw(sample: i16) -> u8 {
    let sign = if sample < 0 { 0x80 } else { 0 };
    let magnitude = (sample as i32).abs().min(32635) + MU_BIAS;
    let exponent = (7 - (magnitude.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (magnitude >> (exponent + 3)) & 0x0f;
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    (if a & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

fn linear_to_alaw(sample: i16) -> u8 {
    let sign = if sample >= 0 { 0x80 } else { 0 };
    let magnitude = ((sample as i32).abs() >> 3).min(0x0fff);
    let (exponent, mantissa) = if magnitude < 32 {
        (0, magnitude >> 1)
    } else {
        let e = 31 - magnitude.leading_zeros() as i32 - 4;
        (e, (magnitude >> e) & 0x0f)
    };
    (sign | ((exponent as u8) << 4) | mantissa as u8) ^ 0x55
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_of_both_laws() {
        // Silence and full scale from the standard's tables.
        assert_eq!(Law::Mu.decode(0xff), 0);
        assert_eq!(Law::Mu.decode(0x7f), 0);
        assert_eq!(Law::Mu.decode(0x00), -32124);
        assert_eq!(Law::Mu.decode(0x80), 32124);
        assert_eq!(Law::A.decode(0xd5), 8);
        assert_eq!(Law::A.decode(0x55), -8);
        assert_eq!(Law::A.decode(0xaa), 32256);
        assert_eq!(Law::A.decode(0x2a), -32256);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for law in [Law::Mu, Law::A] {
            for b in 0..=255u8 {
                let back = law.encode(law.decode(b));
                // µ-law has two zeros (0x7f and 0xff): both decode to 0.
                let same = back == b || (law == Law::Mu && law.decode(back) == law.decode(b));
                assert!(same, "{law:?} {b:#04x} -> {} -> {back:#04x}", law.decode(b));
            }
        }
    }

    #[test]
    fn encoding_keeps_the_signal_within_a_step() {
        for law in [Law::Mu, Law::A] {
            for s in (-32000i32..32000).step_by(97) {
                let back = law.decode(law.encode(s as i16)) as i32;
                let step = (s.abs() / 16).max(16);
                assert!((back - s).abs() <= step, "{law:?} {s} -> {back}");
            }
        }
    }

    #[test]
    fn names_map_to_laws_at_8khz_only() {
        assert_eq!(Law::from_encoding("pcmu", 8000), Some(Law::Mu));
        assert_eq!(Law::from_encoding("PCMA", 8000), Some(Law::A));
        assert_eq!(Law::from_encoding("PCMA", 16000), None);
        assert_eq!(Law::from_encoding("telephone-event", 8000), None);
    }
}
