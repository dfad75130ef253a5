//! [`Context`]: one direction's SRTP and SRTCP state under one master key,
//! protecting or unprotecting packets in place. Per SSRC it keeps the SRTP
//! index (ROC and highest sequence) and replay window, and the SRTCP index
//! (sent) or window (received), for a few SSRCs at once (a stream that
//! changes SSRC, or RTP and RTCP from two sources), the least recently used
//! one giving way. Nothing allocates after [`Context::new`].

use super::cipher::{Kind, SessionKeys};
use super::replay::Window;
use super::{Error, Keying, Mki};

/// SSRCs tracked at once per context.
const STREAMS: usize = 4;

/// RFC 3711 section 9.2: a master key protects at most 2^48 SRTP and 2^31
/// SRTCP packets.
const MAX_RTP: u64 = 1 << 48;
const MAX_RTCP: u64 = 1 << 31;

#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    ssrc: u32,
    used: u64,
    rtp: Window,
    rtcp: Window,
    /// The last SRTCP index sent.
    rtcp_sent: u32,
}

/// One direction's SRTP and SRTCP state.
pub struct Context {
    rtp: SessionKeys,
    rtcp: SessionKeys,
    mki: Option<Mki>,
    streams: [Stream; STREAMS],
    /// Use stamp for least-recently-used replacement.
    clock: u64,
    rtp_left: u64,
    rtcp_left: u64,
}

/// RTP fixed header length.
const RTP_HEADER: usize = 12;
/// RTCP's header up to and including the sender's SSRC (not encrypted).
const RTCP_HEADER: usize = 8;
/// SRTCP's E flag and 31-bit index.
const RTCP_INDEX: usize = 4;

/// The length of an RTP packet's header (with CSRCs and extension).
fn rtp_header_len(p: &[u8]) -> Result<usize, Error> {
    if p.len() < RTP_HEADER {
        return Err(Error::TooShort);
    }
    if p[0] >> 6 != 2 {
        return Err(Error::NotVersion2);
    }
    let mut len = RTP_HEADER + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let words = p.get(len + 2..len + 4).ok_or(Error::TooShort)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    if len > p.len() {
        return Err(Error::TooShort);
    }
    Ok(len)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Context {
    /// Derives the session keys of `k` (checked with [`Keying::check`]).
    pub fn new(k: &Keying) -> Context {
        let lifetime = k.lifetime.unwrap_or(u64::MAX);
        Context {
            rtp: SessionKeys::derive(k.suite, &k.key, Kind::Rtp),
            rtcp: SessionKeys::derive(k.suite, &k.key, Kind::Rtcp),
            mki: k.mki,
            streams: [Stream::default(); STREAMS],
            clock: 0,
            rtp_left: lifetime.min(MAX_RTP),
            rtcp_left: lifetime.min(MAX_RTCP),
        }
    }

    fn mki_len(&self) -> usize {
        self.mki.map_or(0, |m| usize::from(m.len))
    }

    /// Bytes SRTP adds to an RTP packet.
    pub fn rtp_overhead(&self) -> usize {
        self.mki_len() + self.rtp.tag_len()
    }

    /// Bytes SRTCP adds to an RTCP packet.
    pub fn rtcp_overhead(&self) -> usize {
        RTCP_INDEX + self.mki_len() + self.rtcp.tag_len()
    }

    /// The state of `ssrc`, taking over the least recently used slot for a
    /// new one.
    fn stream(&mut self, ssrc: u32) -> &mut Stream {
        self.clock += 1;
        let i = match self
            .streams
            .iter()
            .position(|s| s.used > 0 && s.ssrc == ssrc)
        {
            Some(i) => i,
            None => {
                let i = (0..STREAMS)
                    .min_by_key(|&i| self.streams[i].used)
                    .unwrap_or(0);
                self.streams[i] = Stream {
                    ssrc,
                    ..Stream::default()
                };
                i
            }
        };
        self.streams[i].used = self.clock;
        &mut self.streams[i]
    }

    fn write_mki(&self, out: &mut [u8]) {
        if let Some(m) = self.mki {
            let n = usize::from(m.len);
            out[..n].copy_from_slice(&m.value.to_be_bytes()[4 - n..]);
        }
    }

    fn check_mki(&self, got: &[u8]) -> Result<(), Error> {
        let mut want = [0u8; 4];
        self.write_mki(&mut want);
        if got == &want[..got.len()] {
            Ok(())
        } else {
            Err(Error::Mki)
        }
    }

    /// Protects the RTP packet in `buf[..len]`; `buf` must be exactly
    /// `len + rtp_overhead()` long. Returns the SRTP length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let out_len = len + self.rtp_overhead();
        if buf.len() != out_len {
            return Err(Error::NoRoom);
        }
        if self.rtp_left == 0 {
            return Err(Error::KeyExpired);
        }
        let header = rtp_header_len(&buf[..len])?;
        let ssrc = be32(&buf[8..12]);
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let stream = self.stream(ssrc);
        let index = stream.rtp.rtp_index(seq);
        stream.rtp.record(index);
        self.rtp_left -= 1;
        let tag_len = self.rtp.tag_len();
        match &self.rtp {
            SessionKeys::Cm(k) => {
                k.apply(ssrc, index, &mut buf[header..len]);
                let roc = ((index >> 16) as u32).to_be_bytes();
                let (packet, trailer) = buf.split_at_mut(len);
                let (mki, tag) = trailer.split_at_mut(trailer.len() - tag_len);
                k.tag(packet, &roc, tag);
                self.write_mki(mki);
            }
            SessionKeys::Gcm(k) => {
                let nonce = k.rtp_nonce(ssrc, index);
                let (aad, rest) = buf.split_at_mut(header);
                let (body, trailer) = rest.split_at_mut(len - header);
                let (tag, mki) = trailer.split_at_mut(tag_len);
                k.seal(&nonce, aad, body, tag);
                self.write_mki(mki);
            }
        }
        Ok(out_len)
    }

    /// Checks and decrypts the SRTP packet `buf` in place; returns the RTP
    /// length. A packet that fails leaves the state as it was.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let tag_len = self.rtp.tag_len();
        let mki_len = self.mki_len();
        let len = buf
            .len()
            .checked_sub(tag_len + mki_len)
            .ok_or(Error::TooShort)?;
        let header = rtp_header_len(&buf[..len])?;
        let ssrc = be32(&buf[8..12]);
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let mut window = self.stream(ssrc).rtp;
        let index = window.rtp_index(seq);
        window.check(index)?;
        match &self.rtp {
            SessionKeys::Cm(k) => {
                let (packet, trailer) = buf.split_at_mut(len);
                let (mki, tag) = trailer.split_at(mki_len);
                self.check_mki(mki)?;
                let roc = ((index >> 16) as u32).to_be_bytes();
                if !k.verify(packet, &roc, tag) {
                    return Err(Error::Auth);
                }
                k.apply(ssrc, index, &mut packet[header..]);
            }
            SessionKeys::Gcm(k) => {
                let (aad, rest) = buf.split_at_mut(header);
                let (body, trailer) = rest.split_at_mut(len - header);
                let (tag, mki) = trailer.split_at(tag_len);
                self.check_mki(mki)?;
                k.open(&k.rtp_nonce(ssrc, index), aad, body, tag)?;
            }
        }
        window.record(index);
        self.stream(ssrc).rtp = window;
        Ok(len)
    }

    /// Protects the RTCP compound packet in `buf[..len]`; `buf` must be
    /// exactly `len + rtcp_overhead()` long. Returns the SRTCP length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let out_len = len + self.rtcp_overhead();
        if buf.len() != out_len {
            return Err(Error::NoRoom);
        }
        if len < RTCP_HEADER {
            return Err(Error::TooShort);
        }
        if buf[0] >> 6 != 2 {
            return Err(Error::NotVersion2);
        }
        if self.rtcp_left == 0 {
            return Err(Error::KeyExpired);
        }
        let ssrc = be32(&buf[4..8]);
        let stream = self.stream(ssrc);
        stream.rtcp_sent = (stream.rtcp_sent + 1) & 0x7fff_ffff;
        let index = stream.rtcp_sent;
        self.rtcp_left -= 1;
        let e_index = (index | 0x8000_0000).to_be_bytes();
        let tag_len = self.rtcp.tag_len();
        match &self.rtcp {
            SessionKeys::Cm(k) => {
                k.apply(ssrc, u64::from(index), &mut buf[RTCP_HEADER..len]);
                buf[len..len + RTCP_INDEX].copy_from_slice(&e_index);
                let (packet, trailer) = buf.split_at_mut(len + RTCP_INDEX);
                let (mki, tag) = trailer.split_at_mut(trailer.len() - tag_len);
                k.tag(packet, &[], tag);
                self.write_mki(mki);
            }
            SessionKeys::Gcm(k) => {
                let mut aad = [0u8; RTCP_HEADER + RTCP_INDEX];
                aad[..RTCP_HEADER].copy_from_slice(&buf[..RTCP_HEADER]);
                aad[RTCP_HEADER..].copy_from_slice(&e_index);
                let (body, trailer) = buf[RTCP_HEADER..].split_at_mut(len - RTCP_HEADER);
                let (tag, rest) = trailer.split_at_mut(tag_len);
                k.seal(&k.rtcp_nonce(ssrc, index), &aad, body, tag);
                rest[..RTCP_INDEX].copy_from_slice(&e_index);
                self.write_mki(&mut rest[RTCP_INDEX..]);
            }
        }
        Ok(out_len)
    }

    /// Checks and decrypts the SRTCP packet `buf` in place; returns the
    /// RTCP length. An unencrypted SRTCP packet (E flag clear) is
    /// authenticated and passed on as it is.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let tag_len = self.rtcp.tag_len();
        let mki_len = self.mki_len();
        let len = buf
            .len()
            .checked_sub(RTCP_INDEX + tag_len + mki_len)
            .filter(|&l| l >= RTCP_HEADER)
            .ok_or(Error::TooShort)?;
        if buf[0] >> 6 != 2 {
            return Err(Error::NotVersion2);
        }
        let ssrc = be32(&buf[4..8]);
        // CM: index, MKI, tag; GCM: tag, index, MKI.
        let index_at = if matches!(self.rtcp, SessionKeys::Gcm(_)) {
            len + tag_len
        } else {
            len
        };
        let e_index = be32(&buf[index_at..index_at + RTCP_INDEX]);
        let (encrypted, index) = (e_index >> 31 == 1, e_index & 0x7fff_ffff);
        let mut window = self.stream(ssrc).rtcp;
        window.check(u64::from(index))?;
        match &self.rtcp {
            SessionKeys::Cm(k) => {
                let (packet, trailer) = buf.split_at_mut(len + RTCP_INDEX);
                let (mki, tag) = trailer.split_at(mki_len);
                self.check_mki(mki)?;
                if !k.verify(packet, &[], tag) {
                    return Err(Error::Auth);
                }
                if encrypted {
                    k.apply(ssrc, u64::from(index), &mut packet[RTCP_HEADER..len]);
                }
            }
            SessionKeys::Gcm(k) => {
                self.check_mki(&buf[len + tag_len + RTCP_INDEX..])?;
                let mut aad = [0u8; RTCP_HEADER + RTCP_INDEX];
                aad[..RTCP_HEADER].copy_from_slice(&buf[..RTCP_HEADER]);
                aad[RTCP_HEADER..].copy_from_slice(&e_index.to_be_bytes());
                let (body, trailer) = buf[RTCP_HEADER..].split_at_mut(len - RTCP_HEADER);
                let tag = &trailer[..tag_len];
                if !encrypted {
                    return Err(Error::Auth);
                }
                k.open(&k.rtcp_nonce(ssrc, index), &aad, body, tag)?;
            }
        }
        window.record(u64::from(index));
        self.stream(ssrc).rtcp = window;
        Ok(len)
    }
}
