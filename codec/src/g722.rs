//! G.722 (ITU-T, 1988) at 64 kbit/s, mode 1: 16 kHz linear PCM split by
//! a 24-tap quadrature mirror filter into two 8 kHz sub-bands, the lower
//! coded with 6-bit and the upper with 2-bit ADPCM, one octet per pair of
//! input samples (RTP payload type 9, whose timestamp clock runs at 8 kHz,
//! RFC 3551 section 4.5.2).
//!
//! Written here from the ITU-T recommendation's block descriptions (QMF,
//! SUBTRA, QUANTL/H, INVQAL/AH, LOGSCL/H, SCALEL/H, RECONS, PARREC,
//! UPPOL1/2, UPZERO, FILTEP, FILTEZ, PREDIC) and its tables, because
//! crates.io has no stand-alone G.722 crate: the ones there come inside
//! VoIP frameworks (ezk-g722 pulls the ezk runtime and its RTP crates,
//! audio-codec a collection of its own codec traits), and a coder of a
//! few hundred lines of integer arithmetic is smaller than either
//! dependency. All arithmetic is the recommendation's 16-bit fixed point,
//! saturated where the recommendation saturates, so no input can overflow.

/// Transmit and receive QMF coefficients (the recommendation's h(i), half
/// of the symmetric 24 taps).
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

/// QUANTL's decision levels, scaled by 2^-12 of the step size.
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
/// Lower-band 6-bit code words for negative and positive differences.
const ILN: [i32; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4, 0,
];
const ILP: [i32; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32, 0,
];
/// Lower-band log scale factor multipliers, by 4-bit magnitude class.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [i32; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Inverse log-to-linear table of the scale factor adaptation.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// Lower-band 4-bit inverse quantiser (the predictor's input).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// Lower-band 6-bit inverse quantiser (the decoder's output at 64 kbit/s).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Upper band: inverse quantiser, code words, log scale multipliers.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];
const WH: [i32; 3] = [0, -214, 798];
const RH2: [i32; 4] = [2, 1, 2, 1];

fn sat(x: i32) -> i32 {
    x.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// One sub-band's adaptive predictor and scale factor.
#[derive(Debug, Clone)]
struct Band {
    /// Predicted signal, its zero-section part.
    s: i32,
    sz: i32,
    /// Log and linear scale factors.
    nb: i32,
    det: i32,
    /// Reconstructed signals, partial reconstructions, differences.
    r: [i32; 3],
    p: [i32; 3],
    d: [i32; 7],
    /// Pole and zero predictor coefficients.
    a: [i32; 3],
    b: [i32; 7],
}

impl Band {
    fn new(det: i32) -> Band {
        Band {
            s: 0,
            sz: 0,
            nb: 0,
            det,
            r: [0; 3],
            p: [0; 3],
            d: [0; 7],
            a: [0; 3],
            b: [0; 7],
        }
    }

    /// LOGSCL/H and SCALEL/H: adapts the scale factor to `multiplier`,
    /// its log kept within `max_nb`; `shift_base` is 8 (lower) or 10 (upper).
    fn scale(&mut self, multiplier: i32, max_nb: i32, shift_base: i32) {
        self.nb = (((self.nb * 127) >> 7) + multiplier).clamp(0, max_nb);
        let mantissa = ILB[((self.nb >> 6) & 31) as usize];
        let shift = shift_base - (self.nb >> 11);
        let linear = if shift < 0 {
            mantissa << -shift
        } else {
            mantissa >> shift
        };
        self.det = linear << 2;
    }

    /// Block 4: reconstruction with difference `d`, predictor adaptation
    /// (UPPOL1/2, UPZERO) and the next prediction (FILTEP, FILTEZ, PREDIC).
    fn adapt(&mut self, d: i32) {
        self.d[0] = d;
        self.r[0] = sat(self.s + d);
        self.p[0] = sat(self.sz + d);
        let sign = |x: i32| x >> 15;
        let (sg0, sg1, sg2) = (sign(self.p[0]), sign(self.p[1]), sign(self.p[2]));
        // UPPOL2
        let wd1 = sat(self.a[1] << 2);
        let wd2 = if sg0 == sg1 { -wd1 } else { wd1 }.min(32767);
        let a2 = ((wd2 >> 7) + if sg0 == sg2 { 128 } else { -128 } + ((self.a[2] * 32512) >> 15))
            .clamp(-12288, 12288);
        // UPPOL1
        let limit = sat(15360 - a2);
        let a1 = sat(if sg0 == sg1 { 192 } else { -192 } + ((self.a[1] * 32640) >> 15))
            .clamp(-limit, limit);
        // UPZERO
        let step = if d == 0 { 0 } else { 128 };
        let sgd = sign(d);
        for (b, &d) in self.b[1..].iter_mut().zip(&self.d[1..]) {
            let g = if sign(d) == sgd { step } else { -step };
            *b = sat(g + ((*b * 32640) >> 15));
        }
        // DELAYA
        self.d.copy_within(..6, 1);
        self.r.copy_within(..2, 1);
        self.p.copy_within(..2, 1);
        self.a[1] = a1;
        self.a[2] = a2;
        // FILTEP, FILTEZ, PREDIC
        let sp = sat(
            ((self.a[1] * sat(self.r[1] * 2)) >> 15) + ((self.a[2] * sat(self.r[2] * 2)) >> 15)
        );
        let sz: i32 = (1..7).map(|i| (self.b[i] * sat(self.d[i] * 2)) >> 15).sum();
        self.sz = sat(sz);
        self.s = sat(sp + self.sz);
    }
}

/// The QMF's delay line: the last 24 samples, newest last.
#[derive(Debug, Clone, Default)]
struct Qmf([i32; 24]);

impl Qmf {
    /// Shifts in two samples; the filter's (odd, even) tap sums.
    fn push(&mut self, first: i32, second: i32) -> (i32, i32) {
        self.0.copy_within(2.., 0);
        self.0[22] = first;
        self.0[23] = second;
        let mut odd = 0;
        let mut even = 0;
        for (i, &c) in QMF.iter().enumerate() {
            odd += self.0[2 * i] * c;
            even += self.0[2 * i + 1] * QMF[11 - i];
        }
        (odd, even)
    }
}

/// A G.722 64 kbit/s encoder: 16 kHz samples in, one octet per two out.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    qmf: Qmf,
    low: Band,
    high: Band,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    pub fn new() -> Self {
        G722Encoder {
            qmf: Qmf::default(),
            low: Band::new(32),
            high: Band::new(8),
        }
    }

    /// Encodes pairs of `pcm` samples into `out`, as far as both go; the
    /// octets written (a trailing odd sample is left out).
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let mut n = 0;
        for (pair, o) in pcm.chunks_exact(2).zip(out.iter_mut()) {
            *o = self.encode_pair(i32::from(pair[0]), i32::from(pair[1]));
            n += 1;
        }
        n
    }

    fn encode_pair(&mut self, first: i32, second: i32) -> u8 {
        let (odd, even) = self.qmf.push(first, second);
        let xlow = (even + odd) >> 14;
        let xhigh = (even - odd) >> 14;
        // Lower band: SUBTRA, QUANTL, INVQAL.
        let el = sat(xlow - self.low.s);
        let magnitude = if el >= 0 { el } else { -(el + 1) };
        let level = (1..30)
            .find(|&i| magnitude < (Q6[i] * self.low.det) >> 12)
            .unwrap_or(30);
        let ilow = if el < 0 { ILN[level] } else { ILP[level] };
        let ril = (ilow >> 2) as usize;
        let dlow = (self.low.det * QM4[ril]) >> 15;
        self.low.scale(WL[RL42[ril] as usize], 18432, 8);
        self.low.adapt(dlow);
        // Upper band: SUBTRA, QUANTH, INVQAH.
        let eh = sat(xhigh - self.high.s);
        let magnitude = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if magnitude >= (564 * self.high.det) >> 12 {
            2
        } else {
            1
        };
        let ihigh = if eh < 0 { IHN[mih] } else { IHP[mih] };
        let dhigh = (self.high.det * QM2[ihigh as usize]) >> 15;
        self.high.scale(WH[RH2[ihigh as usize] as usize], 22528, 10);
        self.high.adapt(dhigh);
        ((ihigh << 6) | ilow) as u8
    }
}

/// A G.722 64 kbit/s decoder: one octet in, two 16 kHz samples out.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    qmf: Qmf,
    low: Band,
    high: Band,
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    pub fn new() -> Self {
        G722Decoder {
            qmf: Qmf::default(),
            low: Band::new(32),
            high: Band::new(8),
        }
    }

    /// Decodes `codes` into `out`, two samples per octet, as far as both
    /// go; the samples written.
    pub fn decode(&mut self, codes: &[u8], out: &mut [i16]) -> usize {
        let mut n = 0;
        for (&code, pair) in codes.iter().zip(out.chunks_exact_mut(2)) {
            let (first, second) = self.decode_octet(code);
            pair[0] = first;
            pair[1] = second;
            n += 2;
        }
        n
    }

    fn decode_octet(&mut self, code: u8) -> (i16, i16) {
        let ilow = (code & 0x3f) as usize;
        let ihigh = ((code >> 6) & 3) as usize;
        // Lower band: INVQBL, RECONS, LIMIT; INVQAL for the predictor.
        let rlow = (self.low.s + ((self.low.det * QM6[ilow]) >> 15)).clamp(-16384, 16383);
        let ril = ilow >> 2;
        let dlow = (self.low.det * QM4[ril]) >> 15;
        self.low.scale(WL[RL42[ril] as usize], 18432, 8);
        self.low.adapt(dlow);
        // Upper band: INVQAH, RECONS, LIMIT.
        let dhigh = (self.high.det * QM2[ihigh]) >> 15;
        let rhigh = (dhigh + self.high.s).clamp(-16384, 16383);
        self.high.scale(WH[RH2[ihigh] as usize], 22528, 10);
        self.high.adapt(dhigh);
        // Receive QMF.
        let (second, first) = self.qmf.push(rlow + rhigh, rlow - rhigh);
        (sat(first >> 11) as i16, sat(second >> 11) as i16)
    }
}
