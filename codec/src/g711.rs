//! G.711 (ITU-T, 1972): µ-law (PCMU, RTP payload type 0) and A-law (PCMA,
//! payload type 8) companding between 16-bit linear PCM and 8-bit code
//! words, bit-exact with the reference coder: µ-law quantises the 14 most
//! significant bits, A-law the 13 most significant, with the standard's
//! segment and step layout, and decoding yields each interval's midpoint
//! scaled to 16 bits.
//!
//! Written here rather than taken from crates.io: the G.711 crates there
//! are either a part of a larger framework (oxideav-g711 needs the oxideav
//! core and codec crates, rvoip's codec-core a whole VoIP stack) or a
//! small single-owner crate (audio-codec-algorithms) whose documentation
//! does not say it is checked against the reference coder; the coder is a
//! dozen lines of integer arithmetic, and the tests here pin it to the
//! reference for every code word and every 16-bit input.
//! Decoding is a table built at compile time; encoding is arithmetic.

/// Which G.711 law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law, RTP payload type 0.
    Pcmu,
    /// A-law, RTP payload type 8.
    Pcma,
}

impl Law {
    /// The law of a static RTP payload type (RFC 3551): 0 or 8.
    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Pcmu),
            8 => Some(Law::Pcma),
            _ => None,
        }
    }

    /// The law an SDP encoding name stands for, if it is G.711 at 8 kHz.
    pub fn from_encoding(name: &str, clock_rate: u32) -> Option<Law> {
        match (name.to_ascii_uppercase().as_str(), clock_rate) {
            ("PCMU", 8000) => Some(Law::Pcmu),
            ("PCMA", 8000) => Some(Law::Pcma),
            _ => None,
        }
    }

    /// Its SDP encoding name.
    pub fn encoding(self) -> &'static str {
        match self {
            Law::Pcmu => "PCMU",
            Law::Pcma => "PCMA",
        }
    }

    pub fn payload_type(self) -> u8 {
        match self {
            Law::Pcmu => 0,
            Law::Pcma => 8,
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Pcmu => ulaw_encode(sample),
            Law::Pcma => alaw_encode(sample),
        }
    }

    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Pcmu => ULAW_TABLE[code as usize],
            Law::Pcma => ALAW_TABLE[code as usize],
        }
    }

    /// The code word of a zero sample (what silence is made of).
    pub fn silence(self) -> u8 {
        self.encode(0)
    }

    /// Encodes `pcm` into `out`, sample for code word, as far as both go.
    pub fn encode_into(self, pcm: &[i16], out: &mut [u8]) {
        for (o, &s) in out.iter_mut().zip(pcm) {
            *o = self.encode(s);
        }
    }

    /// Decodes `codes` into `out`, code word for sample, as far as both go.
    pub fn decode_into(self, codes: &[u8], out: &mut [i16]) {
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = self.decode(c);
        }
    }
}

/// µ-law's bias in the 14-bit domain (33), and the largest magnitude coded.
const ULAW_BIAS: i32 = 0x21;
const ULAW_CLIP: i32 = 8159;

/// The segment (0..=7) of a magnitude: segment `s` holds magnitudes below
/// `first_end << s`; values past the last segment give 8.
fn segment(magnitude: i32, first_end: i32) -> i32 {
    (0..8).find(|&s| magnitude < first_end << s).unwrap_or(8)
}

pub fn ulaw_encode(sample: i16) -> u8 {
    let x = i32::from(sample) >> 2;
    let (magnitude, mask) = if x < 0 { (-x, 0x7f) } else { (x, 0xff) };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    let seg = segment(biased, 0x40);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let code = (seg << 4) | ((biased >> (seg + 1)) & 0xf);
    (code as u8) ^ mask
}

pub fn alaw_encode(sample: i16) -> u8 {
    let x = i32::from(sample) >> 3;
    let (magnitude, mask) = if x >= 0 { (x, 0xd5) } else { (-x - 1, 0x55) };
    let seg = segment(magnitude, 0x20);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let step = if seg < 2 {
        magnitude >> 1
    } else {
        magnitude >> seg
    };
    (((seg << 4) | (step & 0xf)) as u8) ^ mask
}

pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

const fn ulaw_level(code: u8) -> i16 {
    let c = !code;
    let seg = (c >> 4) & 7;
    let step = (c & 0xf) as i32;
    let magnitude = (((step << 3) + 0x84) << seg) - 0x84;
    (if c & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

const fn alaw_level(code: u8) -> i16 {
    let c = code ^ 0x55;
    let seg = ((c >> 4) & 7) as i32;
    let mut magnitude = (((c & 0xf) as i32) << 4) + 8;
    if seg > 0 {
        magnitude = (magnitude + 0x100) << (seg - 1);
    }
    (if c & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

const fn table(law: Law) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match law {
            Law::Pcmu => ulaw_level(i as u8),
            Law::Pcma => alaw_level(i as u8),
        };
        i += 1;
    }
    t
}

static ULAW_TABLE: [i16; 256] = table(Law::Pcmu);
static ALAW_TABLE: [i16; 256] = table(Law::Pcma);
