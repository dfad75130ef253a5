//! HEPv3 export (Homer), as rtpengine and Kamailio's siptrace do it: every
//! SIP message the B2BUA receives and sends, on both legs, optionally the
//! NG control messages, and the RTCP reports the data plane read
//! ([`rtcp`]: what the sampler finds new in the flows it polls).
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
//! reports by the call whose media session holds the flow (the A leg's
//! Call-ID for a B2BUA call, the `call-id` for an NG one).

pub mod config;
mod correlate;
mod exporter;
pub mod rtcp;

use crate::b2bua::{B2bua, Transport};
use crate::sipinbox::Inbound;
use config::HepConfig;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
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
    /// RTCP reports a flow read that a later one replaced before the
    /// once-a-second poll saw them (see [`rtcp`]).
    pub rtcp_superseded: AtomicU64,
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
    /// Whether RTCP reports are exported (`hep.rtcp`).
    pub rtcp: bool,
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
        tracing::info!(%collector, transport = ?cfg.transport, ng = cfg.ng, rtcp = cfg.rtcp,
            "HEP export on");
        Ok(Some(Tap {
            tx,
            ng: cfg.ng,
            rtcp: cfg.rtcp,
            counters,
        }))
    }

    /// Queues `item` unless the queue is full (or the exporter gone):
    /// then it is counted and dropped.
    fn queue(&self, item: Item) {
        if self.tx.try_send(item).is_err() {
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

    /// An RTCP report (`body`, [`rtcp::body`]) that passed from `src` to
    /// `dst` `ago` before now, of the call `correlation` names (its A leg's
    /// Call-ID, or the NG `call-id`).
    pub fn rtcp(
        &self,
        src: SocketAddr,
        dst: SocketAddr,
        body: &[u8],
        correlation: &str,
        ago: Duration,
    ) {
        let now = item(src, dst, body);
        self.queue(Item {
            time: now.time.saturating_sub(ago),
            kind: PayloadKind::Rtcp,
            correlation: Correlation::Given(correlation.to_string()),
            ..now
        });
    }

    /// Exports the reports in `flows` that `cursor` has not seen, each
    /// correlated to the call holding its flow (`calls`, asked only when
    /// there is one; a flow of no call is not exported).
    pub fn rtcp_reports(
        &self,
        cursor: &mut rtcp::Cursor,
        flows: &[tollgate_dataplane::table::FlowReport],
        recent: Duration,
        calls: impl FnOnce() -> std::collections::HashMap<SocketAddr, String>,
    ) {
        let fresh = cursor.fresh(flows, recent);
        if fresh.is_empty() {
            return;
        }
        let calls = calls();
        for f in fresh {
            let Some(call) = calls.get(&f.local) else {
                continue;
            };
            let c = &self.counters.rtcp_superseded;
            c.fetch_add(f.superseded, Ordering::Relaxed);
            let ago = Duration::from_millis(f.report.ms_ago);
            self.rtcp(f.peer, f.local, &rtcp::body(&f.report), call, ago);
        }
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
    /// for timers) and what that produced, `out`, timestamped when produced
    /// (a message held for a CDR's sync leaves a little later). TLS is
    /// exported as TCP, its payload decrypted.
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

#[cfg(test)]
mod tests {
    use super::*;
    use config::HepTransport;
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::Instant;

    fn tcp_tap(port: u16, queue: usize) -> Tap {
        let cfg = HepConfig {
            collector: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            transport: HepTransport::Tcp,
            queue,
            ..HepConfig::default()
        };
        Tap::start(&cfg).unwrap().expect("a collector is set")
    }

    fn a() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40000))
    }

    #[test]
    fn a_tcp_collector_that_comes_late_gets_the_reports_sent_after_it_is_up() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let tap = tcp_tap(port, 64);
        let end = Instant::now() + Duration::from_secs(2);
        while tap.counters.unsent.load(Ordering::Relaxed) < 2 && Instant::now() < end {
            tap.rtcp(a(), a(), b"\x81\xc9early", "call-1", Duration::ZERO);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            tap.counters.unsent.load(Ordering::Relaxed) >= 2,
            "no collector yet"
        );
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let end = Instant::now() + Duration::from_secs(15);
        let mut conn = loop {
            tap.rtcp(a(), a(), b"\x81\xc9late", "call-1", Duration::ZERO);
            if let Ok((c, _)) = listener.accept() {
                break c;
            }
            assert!(
                Instant::now() < end,
                "the exporter did not reconnect within 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = [0u8; 6];
        conn.read_exact(&mut head).unwrap();
        let mut rest = vec![0u8; tollgate_hep::packet_len(&head).unwrap() - 6];
        conn.read_exact(&mut rest).unwrap();
        let text = String::from_utf8_lossy(&rest);
        assert!(
            text.ends_with("call-1"),
            "the correlation chunk comes last: {text}"
        );
    }

    #[test]
    fn a_stuck_collector_never_holds_up_the_tap_and_what_overflows_is_counted() {
        // Accepted by the kernel, never read: the exporter's writes stall.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tap = tcp_tap(listener.local_addr().unwrap().port(), 4);
        let report = vec![0x81u8; 60_000];
        let started = Instant::now();
        for _ in 0..2000 {
            tap.rtcp(a(), a(), &report, "call-2", Duration::ZERO);
        }
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "2000 captures took {took:?}");
        assert!(tap.counters.dropped.load(Ordering::Relaxed) > 0);
    }
}
