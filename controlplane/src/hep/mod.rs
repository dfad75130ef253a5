//! HEPv3 export (Homer), as rtpengine and Kamailio's siptrace do it: every
//! SIP message the B2BUA receives and sends, on both legs, optionally the
//! NG control messages, and RTCP reports handed in by whoever reads them.
//!
//! The paths that capture never wait for the collector: a [`Tap`] copies
//! the message into a bounded queue (full: dropped and counted) and the
//! exporter's own thread (`exporter`) correlates, encodes
//! ([`tollgate_hep`]) and sends over UDP or TCP (reconnecting with backoff).
//!
//! Correlation id: the A leg's Call-ID, on both legs of a call (what Homer
//! expects from a B2BUA to show the two dialogs as one call). A-leg
//! messages carry it already; the B leg's is learned once, when the B2BUA
//! sends a B leg's first INVITE ([`SipTap::step`] asks it which call that
//! dialog belongs to), and kept by the exporter for the leg's later
//! messages, also those after the call has ended. NG messages are
//! correlated by their `call-id` (replies by the request's cookie); RTCP
//! by what its caller passes ([`Tap::rtcp`]).

pub mod config;
mod correlate;
mod exporter;

use crate::b2bua::{B2bua, Transport};
use crate::sipinbox::Inbound;
use config::HepConfig;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tollgate_hep::PayloadKind;

/// Export counters since start.
#[derive(Debug, Default)]
pub struct Counters {
    /// HEP packets sent to the collector.
    pub sent: AtomicU64,
    /// Messages dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Messages not sent: the collector was unreachable or refused them.
    pub unsent: AtomicU64,
    /// Messages that cannot be a HEP packet (too large).
    pub unencodable: AtomicU64,
}

/// One captured message, as queued for the exporter.
struct Item {
    time: Duration,
    src: SocketAddr,
    dst: SocketAddr,
    transport: tollgate_hep::Transport,
    kind: PayloadKind,
    bytes: Vec<u8>,
    correlation: Correlation,
}

/// How the exporter finds an item's correlation id.
enum Correlation {
    /// From the SIP message's Call-ID; `Some` names the call (its A leg's
    /// Call-ID) a new B leg belongs to.
    Sip(Option<String>),
    /// From the NG message's `call-id`, or its request's cookie.
    Ng,
    /// Given by the caller.
    Given(String),
}

/// Where captured messages are handed to the exporter; cheap to clone.
#[derive(Clone)]
pub struct Tap {
    tx: SyncSender<Item>,
    ng: bool,
    pub counters: Arc<Counters>,
}

impl Tap {
    /// Starts the exporter when `cfg` names a collector.
    pub fn start(cfg: &HepConfig) -> std::io::Result<Option<Tap>> {
        let Some(collector) = cfg.collector else {
            return Ok(None);
        };
        let (tx, rx) = mpsc::sync_channel(cfg.queue);
        let counters = Arc::<Counters>::default();
        exporter::spawn(cfg.clone(), collector, rx, counters.clone())?;
        tracing::info!(%collector, transport = ?cfg.transport, ng = cfg.ng, "HEP export on");
        Ok(Some(Tap {
            tx,
            ng: cfg.ng,
            counters,
        }))
    }

    fn queue(&self, item: Item) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(item) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An NG message from `src` to `dst` (exported only with `hep.ng`).
    pub fn ng(&self, src: SocketAddr, dst: SocketAddr, tcp: bool, bytes: &[u8]) {
        if self.ng {
            self.queue(Item {
                transport: transport_of(tcp),
                kind: PayloadKind::Log,
                correlation: Correlation::Ng,
                ..item(src, dst, bytes)
            });
        }
    }

    /// An RTCP packet seen between `src` and `dst`, of the call
    /// `correlation` names (its A leg's Call-ID, or the NG `call-id`).
    /// The entry point for the data plane's RTCP reports.
    pub fn rtcp(&self, src: SocketAddr, dst: SocketAddr, bytes: &[u8], correlation: &str) {
        self.queue(Item {
            kind: PayloadKind::Rtcp,
            correlation: Correlation::Given(correlation.to_string()),
            ..item(src, dst, bytes)
        });
    }
}

/// A UDP capture of `bytes` from `src` to `dst`, now, of SIP.
fn item(src: SocketAddr, dst: SocketAddr, bytes: &[u8]) -> Item {
    Item {
        time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
        src,
        dst,
        transport: tollgate_hep::Transport::Udp,
        kind: PayloadKind::Sip,
        bytes: bytes.to_vec(),
        correlation: Correlation::Sip(None),
    }
}

fn transport_of(stream: bool) -> tollgate_hep::Transport {
    if stream {
        tollgate_hep::Transport::Tcp
    } else {
        tollgate_hep::Transport::Udp
    }
}

/// The B2BUA thread's tap: its own address is the other end of every
/// message.
pub struct SipTap {
    pub tap: Tap,
    /// The SIP listener's address (its advertised IP, if set).
    pub local: SocketAddr,
}

impl SipTap {
    /// Captures one step of the B2BUA thread: the message it handled (none
    /// for timers) and what that produced, `out`, before it is sent.
    pub fn step(
        &self,
        b2b: &B2bua,
        input: Option<&Inbound>,
        out: &[(Transport, SocketAddr, Vec<u8>)],
    ) {
        match input {
            Some(Inbound::Datagram(from, bytes)) => {
                self.tap.queue(item(*from, self.local, bytes));
            }
            Some(Inbound::Stream(from, _, bytes)) => self.tap.queue(Item {
                transport: tollgate_hep::Transport::Tcp,
                ..item(*from, self.local, bytes)
            }),
            None => {}
        }
        for (transport, to, bytes) in out {
            self.tap.queue(Item {
                transport: transport_of(*transport != Transport::Udp),
                correlation: Correlation::Sip(correlate::new_leg_of(b2b, bytes)),
                ..item(self.local, *to, bytes)
            });
        }
    }
}
