//! libsrtp 2.5 (Debian's libsrtp2, through its C API): the independent
//! SRTP implementation the tests check Tollgate's against, packet for
//! packet, and the benchmark (dataplane/benches/srtp.rs, which includes this file) measures it beside. Only the
//! calls and structs of srtp2/srtp.h those need, behind a safe [`Session`].

use std::os::raw::{c_int, c_uint, c_ulong, c_void};
use tollgate_dataplane::srtp::Suite;

#[repr(C)]
#[derive(Default)]
struct CryptoPolicy {
    cipher_type: c_uint,
    cipher_key_len: c_int,
    auth_type: c_uint,
    auth_key_len: c_int,
    auth_tag_len: c_int,
    sec_serv: c_int,
}

#[repr(C)]
struct Policy {
    ssrc_type: c_int,
    ssrc_value: c_uint,
    rtp: CryptoPolicy,
    rtcp: CryptoPolicy,
    key: *const u8,
    keys: *mut c_void,
    num_master_keys: c_ulong,
    deprecated_ekt: *mut c_void,
    window_size: c_ulong,
    allow_repeat_tx: c_int,
    enc_xtn_hdr: *mut c_int,
    enc_xtn_hdr_count: c_int,
    next: *mut Policy,
}

#[link(name = "srtp2")]
extern "C" {
    fn srtp_init() -> c_int;
    fn srtp_create(session: *mut *mut c_void, policy: *const Policy) -> c_int;
    fn srtp_dealloc(session: *mut c_void) -> c_int;
    fn srtp_protect(ctx: *mut c_void, hdr: *mut u8, len: *mut c_int) -> c_int;
    fn srtp_unprotect(ctx: *mut c_void, hdr: *mut u8, len: *mut c_int) -> c_int;
    fn srtp_protect_rtcp(ctx: *mut c_void, hdr: *mut u8, len: *mut c_int) -> c_int;
    fn srtp_unprotect_rtcp(ctx: *mut c_void, hdr: *mut u8, len: *mut c_int) -> c_int;
    fn srtp_crypto_policy_set_rtp_default(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_gcm_128_16_auth(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_gcm_256_16_auth(p: *mut CryptoPolicy);
}

/// Which packets a session handles (libsrtp's `ssrc_any_*`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Protects what we send.
    Outbound = 3,
    /// Unprotects what we receive.
    Inbound = 2,
}

/// A libsrtp error status, with the call that returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub &'static str, pub c_int);

/// One libsrtp session: one direction, any SSRC, one master key.
pub struct Session(*mut c_void);

// SAFETY: a session is used by one thread at a time (`&mut self`).
unsafe impl Send for Session {}

static INIT: std::sync::Once = std::sync::Once::new();

impl Session {
    /// A session for `suite` under `key_salt` (key || salt).
    pub fn new(suite: Suite, key_salt: &[u8], direction: Direction) -> Session {
        assert_eq!(
            key_salt.len(),
            suite.key_len() + suite.salt_len(),
            "{suite:?} key length"
        );
        // SAFETY: srtp_init has no preconditions; Once runs it once.
        INIT.call_once(|| assert_eq!(unsafe { srtp_init() }, 0, "srtp_init"));
        // SRTCP keeps the 80-bit tag under the _32 suites (RFC 4568 6.2),
        // as libsrtp's own profiles set it.
        type Set = unsafe extern "C" fn(*mut CryptoPolicy);
        let (set_rtp, set_rtcp): (Set, Set) = match suite {
            Suite::AesCm128HmacSha1_80 => (
                srtp_crypto_policy_set_rtp_default,
                srtp_crypto_policy_set_rtp_default,
            ),
            Suite::AesCm128HmacSha1_32 => (
                srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32,
                srtp_crypto_policy_set_rtp_default,
            ),
            Suite::Aes256CmHmacSha1_80 => (
                srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80,
                srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80,
            ),
            Suite::Aes256CmHmacSha1_32 => (
                srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32,
                srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80,
            ),
            Suite::AeadAes128Gcm => (
                srtp_crypto_policy_set_aes_gcm_128_16_auth,
                srtp_crypto_policy_set_aes_gcm_128_16_auth,
            ),
            Suite::AeadAes256Gcm => (
                srtp_crypto_policy_set_aes_gcm_256_16_auth,
                srtp_crypto_policy_set_aes_gcm_256_16_auth,
            ),
        };
        let mut p = Policy {
            ssrc_type: direction as c_int,
            ssrc_value: 0,
            rtp: CryptoPolicy::default(),
            rtcp: CryptoPolicy::default(),
            key: key_salt.as_ptr(),
            keys: std::ptr::null_mut(),
            num_master_keys: 0,
            deprecated_ekt: std::ptr::null_mut(),
            window_size: 128,
            allow_repeat_tx: 0,
            enc_xtn_hdr: std::ptr::null_mut(),
            enc_xtn_hdr_count: 0,
            next: std::ptr::null_mut(),
        };
        let mut s = std::ptr::null_mut();
        // SAFETY: the policy and key outlive the call; libsrtp copies them.
        unsafe {
            set_rtp(&mut p.rtp);
            set_rtcp(&mut p.rtcp);
            assert_eq!(srtp_create(&mut s, &p), 0, "srtp_create {suite:?}");
        }
        Session(s)
    }

    /// Runs `f` over `buf[..len]` with room after it, and sets `buf`'s length.
    fn run(
        &mut self,
        name: &'static str,
        f: unsafe extern "C" fn(*mut c_void, *mut u8, *mut c_int) -> c_int,
        buf: &mut Vec<u8>,
    ) -> Result<(), Status> {
        let mut len = buf.len() as c_int;
        // libsrtp's trailer is at most 4 (index) + 16 (tag) + MKI bytes.
        buf.resize(buf.len() + 64, 0);
        // SAFETY: `buf` has `len` bytes of packet and room for the trailer.
        let r = unsafe { f(self.0, buf.as_mut_ptr(), &mut len) };
        buf.truncate(if r == 0 { len as usize } else { buf.len() - 64 });
        if r == 0 {
            Ok(())
        } else {
            Err(Status(name, r))
        }
    }

    pub fn protect(&mut self, rtp: &mut Vec<u8>) -> Result<(), Status> {
        self.run("srtp_protect", srtp_protect, rtp)
    }

    pub fn unprotect(&mut self, srtp: &mut Vec<u8>) -> Result<(), Status> {
        self.run("srtp_unprotect", srtp_unprotect, srtp)
    }

    pub fn protect_rtcp(&mut self, rtcp: &mut Vec<u8>) -> Result<(), Status> {
        self.run("srtp_protect_rtcp", srtp_protect_rtcp, rtcp)
    }

    pub fn unprotect_rtcp(&mut self, srtcp: &mut Vec<u8>) -> Result<(), Status> {
        self.run("srtp_unprotect_rtcp", srtp_unprotect_rtcp, srtcp)
    }

    /// `srtp_protect` in place for the benchmark: `buf` has the packet in
    /// its first `len` bytes and room for the tag; returns the new length.
    pub fn protect_in_place(&mut self, buf: &mut [u8], len: usize) -> usize {
        assert!(buf.len() >= len + 64, "room for the trailer");
        let mut n = len as c_int;
        // SAFETY: checked room above.
        assert_eq!(unsafe { srtp_protect(self.0, buf.as_mut_ptr(), &mut n) }, 0);
        n as usize
    }

    /// `srtp_unprotect` in place for the benchmark; returns the RTP length.
    pub fn unprotect_in_place(&mut self, buf: &mut [u8], len: usize) -> usize {
        let mut n = len.min(buf.len()) as c_int;
        // SAFETY: `n` bytes of `buf` are the packet; it only shrinks.
        assert_eq!(
            unsafe { srtp_unprotect(self.0, buf.as_mut_ptr(), &mut n) },
            0
        );
        n as usize
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: created by srtp_create, freed once.
        unsafe { srtp_dealloc(self.0) };
    }
}
