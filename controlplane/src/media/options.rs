//! What an offer, answer or delete asks of the session manager, in its own
//! terms: which addresses to trust and rewrite, interfaces, ICE and rtcp-mux
//! handling, codecs to strip, offer or transcode to, SDES suites, the delete delay. The NG module reads
//! these from an NG dictionary ([`crate::ng::options`]); the B2BUA builds
//! them itself.

use std::net::IpAddr;

/// Which side's address the relay trusts for the offering endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressSource {
    /// The SDP's c= address (rtpengine's default, `trust address`).
    #[default]
    Sdp,
    /// The SIP message's source (`SIP source address`, with `received from`).
    SipSource,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub replace_origin: bool,
    pub replace_session_connection: bool,
    /// `replace` `SDP version`: the o= version advances when the SDP changes.
    pub replace_sdp_version: bool,
    pub address_source: AddressSource,
    pub received_from: Option<IpAddr>,
    pub media_address: Option<IpAddr>,
    pub asymmetric: bool,
    pub strict_source: bool,
    /// Logical interface names: [towards the sender, towards the receiver].
    pub direction: Vec<String>,
    pub ice: Option<String>,
    pub rtcp_mux: Vec<String>,
    pub transport_protocol: Option<String>,
    pub codec_strip: Vec<String>,
    pub codec_offer: Vec<String>,
    pub codec_except: Vec<String>,
    /// `codec` `transcode`: codecs added to the offer, transcoded to
    /// when the answer picks one.
    pub codec_transcode: Vec<String>,
    /// `ptime`: the packet time of the offer sent on.
    pub ptime: Option<u32>,
    pub label: Option<String>,
    pub no_rtcp_attribute: bool,
    pub fatal: bool,
    pub delete_delay: Option<u64>,
    /// `record call`: start (true) or stop (false) recording the call.
    pub record_call: Option<bool>,
    /// The org a recording opened here belongs to (a B2BUA route's; NG
    /// has none).
    pub org: Option<String>,
    pub sdes: Sdes,
}

/// SDES-SRTP choices (rtpengine's `SDES-*` flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sdes {
    /// `SDES-off`: no crypto lines offered.
    pub off: bool,
    /// `SDES-no-<suite>`: never offered nor accepted.
    pub no: Vec<String>,
    /// `SDES-only-<suite>`: only these.
    pub only: Vec<String>,
    /// `SDES-pad`: the relay's keys in padded base64.
    pub pad: bool,
    /// `SDES-lifetime`: the relay's keys carry the lifetime 2^31.
    pub lifetime: bool,
    /// `OSRTP-offer`: a plain offer goes on as an opportunistic one (RFC
    /// 8643: RTP/AVP with crypto lines); an answer with a crypto line makes
    /// that leg SRTP, one without leaves it plain.
    pub osrtp_offer: bool,
    /// `OSRTP-accept`: an opportunistic offer's crypto lines are taken as
    /// SRTP towards a plain answerer.
    pub osrtp_accept: bool,
}

impl Options {
    /// The request asks for `what` in its `rtcp-mux` handling.
    pub fn mux(&self, what: &str) -> bool {
        self.rtcp_mux.iter().any(|m| m == what)
    }
}
