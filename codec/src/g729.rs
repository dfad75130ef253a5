//! G.729 Annex A (CS-ACELP at 8 kbit/s) through Debian's bcg729
//! (libbcg729-dev): 80 samples of 8 kHz PCM per 10-byte frame, RTP payload
//! type 18 (RFC 3551 section 4.5.6), a payload carrying one or more frames
//! and, with Annex B, a 2-byte SID frame last.
//!
//! Bound by hand: crates.io has no binding of bcg729 (g729-sys is a Rust
//! port of its own, not Belledonne's library that Linphone and FreeSWITCH's
//! mod_bcg729 run), and the library's whole interface is six C functions.
//! Each coder owns its channel context and frees it on drop.

use std::ptr::NonNull;

/// Samples in one G.729 frame (10 ms at 8 kHz).
pub const FRAME_SAMPLES: usize = 80;
/// Bytes of one coded speech frame, and of a SID (comfort noise) frame.
pub const FRAME_BYTES: usize = 10;
pub const SID_BYTES: usize = 2;

#[repr(C)]
struct EncoderChannel {
    _opaque: [u8; 0],
}
#[repr(C)]
struct DecoderChannel {
    _opaque: [u8; 0],
}

#[link(name = "bcg729")]
extern "C" {
    fn initBcg729EncoderChannel(enable_vad: u8) -> *mut EncoderChannel;
    fn closeBcg729EncoderChannel(ctx: *mut EncoderChannel);
    fn bcg729Encoder(ctx: *mut EncoderChannel, input: *const i16, out: *mut u8, len: *mut u8);
    fn initBcg729DecoderChannel() -> *mut DecoderChannel;
    fn closeBcg729DecoderChannel(ctx: *mut DecoderChannel);
    fn bcg729Decoder(
        ctx: *mut DecoderChannel,
        bits: *const u8,
        len: u8,
        erased: u8,
        sid: u8,
        rfc3389: u8,
        out: *mut i16,
    );
}

/// bcg729 could not allocate a channel context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bcg729 could not allocate a G.729 channel")]
pub struct NoChannel;

/// A G.729A encoder (no VAD: every 10 ms gives a 10-byte frame).
pub struct G729Encoder(NonNull<EncoderChannel>);

// The context is plain memory owned by this value alone; bcg729 keeps no
// thread-local or global state.
unsafe impl Send for G729Encoder {}

impl std::fmt::Debug for G729Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("G729Encoder")
    }
}

impl G729Encoder {
    pub fn new() -> Result<Self, NoChannel> {
        // SAFETY: no preconditions; a null return is handled.
        let ctx = unsafe { initBcg729EncoderChannel(0) };
        NonNull::new(ctx).map(G729Encoder).ok_or(NoChannel)
    }

    /// Encodes whole 80-sample frames of `pcm` into `out` as far as both
    /// go (a partial frame is left out); the bytes written.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let mut written = 0;
        for (frame, o) in pcm
            .chunks_exact(FRAME_SAMPLES)
            .zip(out.chunks_exact_mut(FRAME_BYTES))
        {
            let mut len = 0u8;
            // SAFETY: `frame` holds 80 samples, `o` 10 bytes, the most
            // bcg729 writes without VAD; the context is live.
            unsafe { bcg729Encoder(self.0.as_ptr(), frame.as_ptr(), o.as_mut_ptr(), &mut len) };
            written += usize::from(len).min(FRAME_BYTES);
        }
        written
    }
}

impl Drop for G729Encoder {
    fn drop(&mut self) {
        // SAFETY: the context came from init and is freed once.
        unsafe { closeBcg729EncoderChannel(self.0.as_ptr()) }
    }
}

/// A G.729 decoder (Annex A speech frames and Annex B SID frames).
pub struct G729Decoder(NonNull<DecoderChannel>);

// See the encoder.
unsafe impl Send for G729Decoder {}

impl std::fmt::Debug for G729Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("G729Decoder")
    }
}

impl G729Decoder {
    pub fn new() -> Result<Self, NoChannel> {
        // SAFETY: as for the encoder.
        let ctx = unsafe { initBcg729DecoderChannel() };
        NonNull::new(ctx).map(G729Decoder).ok_or(NoChannel)
    }

    /// Decodes a payload of 10-byte frames (and a 2-byte SID frame last)
    /// into `out`, 80 samples per frame, as far as `out` goes; the samples
    /// written. Bytes that make no whole frame are ignored.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        let mut written = 0;
        let mut rest = payload;
        for o in out.chunks_exact_mut(FRAME_SAMPLES) {
            let (frame, sid) = match rest.len() {
                n if n >= FRAME_BYTES => (&rest[..FRAME_BYTES], 0),
                SID_BYTES => (rest, 1),
                _ => break,
            };
            // SAFETY: `frame` has the length passed, `o` 80 samples; the
            // context is live.
            unsafe {
                bcg729Decoder(
                    self.0.as_ptr(),
                    frame.as_ptr(),
                    frame.len() as u8,
                    0,
                    sid,
                    0,
                    o.as_mut_ptr(),
                )
            };
            rest = &rest[frame.len()..];
            written += FRAME_SAMPLES;
        }
        written
    }
}

impl Drop for G729Decoder {
    fn drop(&mut self) {
        // SAFETY: the context came from init and is freed once.
        unsafe { closeBcg729DecoderChannel(self.0.as_ptr()) }
    }
}
