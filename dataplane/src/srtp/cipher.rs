//! The session keys of one master key (RFC 3711 section 4.3 key derivation,
//! key_derivation_rate 0 as SDES uses it) and the two transforms over them:
//! AES counter mode with HMAC-SHA1 (RFC 3711 4.1.1, 4.2.1) and AES-GCM
//! (RFC 7714). Each works in place on a packet's bytes.

use super::{Error, MasterKey, Suite};
use aes::cipher::{KeyInit, KeyIvInit, StreamCipher};
use aes::{Aes128, Aes128Enc, Aes256, Aes256Enc};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// RFC 3711 key derivation labels.
#[derive(Clone, Copy)]
pub enum Label {
    RtpCipher = 0,
    RtpAuth = 1,
    RtpSalt = 2,
    RtcpCipher = 3,
    RtcpAuth = 4,
    RtcpSalt = 5,
}

/// The AES-CM PRF: `out.len()` bytes of keystream for `label`, keyed by the
/// master key, from the IV (master salt, label at octet 7) * 2^16.
pub fn derive(master_key: &[u8], master_salt: &[u8], label: Label, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label as u8;
    out.fill(0);
    match master_key.len() {
        16 => ctr::Ctr128BE::<Aes128>::new(master_key.into(), &iv.into()).apply_keystream(out),
        _ => ctr::Ctr128BE::<Aes256>::new(master_key.into(), &iv.into()).apply_keystream(out),
    }
}

/// AES-128 or AES-256 with its (encryption) key schedule expanded once.
/// The variants' sizes differ by AES-256's longer schedule; a few hundred
/// bytes per session key (the stage holding it is boxed once) are worth
/// not chasing a pointer per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Aes {
    A128(Aes128Enc),
    A256(Aes256Enc),
}

impl Aes {
    fn new(key: &[u8]) -> Aes {
        match key.len() {
            16 => Aes::A128(Aes128Enc::new(key.into())),
            _ => Aes::A256(Aes256Enc::new(key.into())),
        }
    }

    /// XORs the counter-mode keystream from `iv` into `data` (the key
    /// schedule is copied, not expanded again).
    fn apply_ctr(&self, iv: &[u8; 16], data: &mut [u8]) {
        use aes::cipher::{InnerIvInit, StreamCipherCoreWrapper};
        type Core<C> = ctr::CtrCore<C, ctr::flavors::Ctr128BE>;
        match self {
            Aes::A128(a) => {
                StreamCipherCoreWrapper::from_core(Core::inner_iv_init(a.clone(), iv.into()))
                    .apply_keystream(data)
            }
            Aes::A256(a) => {
                StreamCipherCoreWrapper::from_core(Core::inner_iv_init(a.clone(), iv.into()))
                    .apply_keystream(data)
            }
        }
    }
}

/// Counter mode and HMAC-SHA1 session keys for one of SRTP or SRTCP.
pub struct CmKeys {
    aes: Aes,
    salt: [u8; 14],
    auth: HmacSha1,
    tag_len: usize,
}

/// AES-GCM session key for one of SRTP or SRTCP.
pub struct GcmKeys {
    aead: Gcm,
    salt: [u8; 12],
}

#[allow(clippy::large_enum_variant)] // as for `Aes`
enum Gcm {
    A128(Aes128Gcm),
    A256(Aes256Gcm),
}

/// One of SRTP's or SRTCP's session keys, for either transform.
pub enum SessionKeys {
    Cm(CmKeys),
    Gcm(GcmKeys),
}

/// Which of the two a set of session keys is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rtp,
    Rtcp,
}

impl SessionKeys {
    /// Derives SRTP's or SRTCP's session keys from `key` (checked for `suite`).
    pub fn derive(suite: Suite, key: &MasterKey, kind: Kind) -> SessionKeys {
        let (mk, ms) = key.split(suite);
        let (lc, la, ls) = match kind {
            Kind::Rtp => (Label::RtpCipher, Label::RtpAuth, Label::RtpSalt),
            Kind::Rtcp => (Label::RtcpCipher, Label::RtcpAuth, Label::RtcpSalt),
        };
        let mut cipher_key = [0u8; 32];
        let cipher_key = &mut cipher_key[..suite.key_len()];
        derive(mk, ms, lc, cipher_key);
        if suite.is_aead() {
            let mut salt = [0u8; 12];
            derive(mk, ms, ls, &mut salt);
            let aead = match cipher_key.len() {
                16 => Gcm::A128(Aes128Gcm::new((&*cipher_key).into())),
                _ => Gcm::A256(Aes256Gcm::new((&*cipher_key).into())),
            };
            return SessionKeys::Gcm(GcmKeys { aead, salt });
        }
        let mut salt = [0u8; 14];
        derive(mk, ms, ls, &mut salt);
        let mut auth_key = [0u8; 20];
        derive(mk, ms, la, &mut auth_key);
        let tag_len = match kind {
            Kind::Rtp => suite.rtp_tag_len(),
            Kind::Rtcp => suite.rtcp_tag_len(),
        };
        SessionKeys::Cm(CmKeys {
            aes: Aes::new(cipher_key),
            salt,
            auth: <HmacSha1 as KeyInit>::new_from_slice(&auth_key).expect("HMAC takes any key"),
            tag_len,
        })
    }

    pub fn tag_len(&self) -> usize {
        match self {
            SessionKeys::Cm(k) => k.tag_len,
            SessionKeys::Gcm(_) => 16,
        }
    }
}

impl CmKeys {
    /// RFC 3711 4.1.1: IV = (salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16).
    pub fn apply(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= s;
        }
        self.aes.apply_ctr(&iv, data);
    }

    /// The truncated HMAC-SHA1 of `authenticated` followed by `trailer`
    /// (SRTP's ROC; empty for SRTCP).
    pub fn tag(&self, authenticated: &[u8], trailer: &[u8], out: &mut [u8]) {
        let mut mac = self.auth.clone();
        mac.update(authenticated);
        mac.update(trailer);
        let full = mac.finalize().into_bytes();
        out.copy_from_slice(&full[..self.tag_len]);
    }

    /// Whether `tag` is the tag of `authenticated` + `trailer` (constant time).
    pub fn verify(&self, authenticated: &[u8], trailer: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.auth.clone();
        mac.update(authenticated);
        mac.update(trailer);
        mac.verify_truncated_left(tag).is_ok()
    }
}

impl GcmKeys {
    /// RFC 7714 8.1 / 9.1: the 12-byte IV is the salt XOR
    /// 00 00 || SSRC || `word` (ROC for SRTP, 00 00 for SRTCP) || `low`.
    fn nonce(&self, ssrc: u32, high: u32, low: u32) -> [u8; 12] {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..8].copy_from_slice(&(high as u16).to_be_bytes());
        iv[8..12].copy_from_slice(&low.to_be_bytes());
        for (b, s) in iv.iter_mut().zip(self.salt) {
            *b ^= s;
        }
        iv
    }

    /// The SRTP nonce: ROC || SEQ after the SSRC.
    pub fn rtp_nonce(&self, ssrc: u32, index: u64) -> [u8; 12] {
        self.nonce(ssrc, (index >> 32) as u32, index as u32)
    }

    /// The SRTCP nonce: 00 00 || 31-bit index after the SSRC.
    pub fn rtcp_nonce(&self, ssrc: u32, index: u32) -> [u8; 12] {
        self.nonce(ssrc, 0, index & 0x7fff_ffff)
    }

    /// Encrypts `data` in place and writes the 16-byte tag into `tag`.
    pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &mut [u8]) {
        let t = match &self.aead {
            Gcm::A128(a) => a.encrypt_in_place_detached(nonce.into(), aad, data),
            Gcm::A256(a) => a.encrypt_in_place_detached(nonce.into(), aad, data),
        }
        .expect("a packet is far below GCM's length limit");
        tag.copy_from_slice(&t);
    }

    /// Checks `tag` and decrypts `data` in place; leaves it alone on failure.
    pub fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Error> {
        let tag = tag.into();
        match &self.aead {
            Gcm::A128(a) => a.decrypt_in_place_detached(nonce.into(), aad, data, tag),
            Gcm::A256(a) => a.decrypt_in_place_detached(nonce.into(), aad, data, tag),
        }
        .map_err(|_| Error::Auth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let aes = Aes::new(&hex("2B7E151628AED2A6ABF7158809CF4F3C"));
        let iv: [u8; 16] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000").try_into().unwrap();
        let mut ks = [0u8; 48];
        aes.apply_ctr(&iv, &mut ks);
        assert_eq!(
            ks.to_vec(),
            hex(concat!(
                "E03EAD0935C95E80E166B16DD92B4EB4",
                "D23513162B02D0F72A43A2FE4A5F97AB",
                "41E95B3BB0A2E8DD477901E4FCA894C0"
            ))
        );
    }

    #[test]
    fn rfc3711_b3_key_derivation() {
        let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let mut cipher = [0u8; 16];
        derive(&key, &salt, Label::RtpCipher, &mut cipher);
        assert_eq!(cipher.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut s = [0u8; 14];
        derive(&key, &salt, Label::RtpSalt, &mut s);
        assert_eq!(s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 20];
        derive(&key, &salt, Label::RtpAuth, &mut auth);
        assert_eq!(
            auth.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }
}
