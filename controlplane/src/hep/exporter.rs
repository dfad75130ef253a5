//! The exporter's thread: takes captured messages from the queue,
//! correlates and encodes them, and sends them to the collector, over UDP
//! (one datagram per packet) or one TCP connection (packets back to
//! back), reopened with backoff when it fails. While the collector is
//! unreachable, messages are counted as unsent and dropped: only this
//! thread ever waits for it.

use super::config::{HepConfig, HepTransport};
use super::correlate::{self, Links};
use super::{Correlation, Counters, Item};
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Legs and NG cookies remembered for correlation, each.
const REMEMBERED: usize = 1 << 16;
/// TCP reconnection backoff: first and longest wait.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));
/// The longest a connect or a write to the collector may take.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the counters are logged while something is dropped or unsent.
const REPORT_EVERY: Duration = Duration::from_secs(60);

pub fn spawn(
    cfg: HepConfig,
    collector: SocketAddr,
    rx: Receiver<Item>,
    counters: Arc<Counters>,
) -> std::io::Result<()> {
    let link = match cfg.transport {
        HepTransport::Udp => {
            let any: SocketAddr = match collector {
                SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
                SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            Link::Udp(UdpSocket::bind(any)?)
        }
        HepTransport::Tcp => Link::Tcp {
            stream: None,
            retry_at: Instant::now(),
            backoff: BACKOFF.0,
        },
    };
    let mut exporter = Exporter {
        cfg,
        collector,
        link,
        legs: Links::new(REMEMBERED),
        cookies: Links::new(REMEMBERED),
        counters,
        buf: Vec::new(),
    };
    std::thread::Builder::new()
        .name("tg-hep".into())
        .spawn(move || exporter.run(rx))?;
    Ok(())
}

enum Link {
    Udp(UdpSocket),
    Tcp {
        stream: Option<TcpStream>,
        retry_at: Instant,
        backoff: Duration,
    },
}

struct Exporter {
    cfg: HepConfig,
    collector: SocketAddr,
    link: Link,
    legs: Links,
    cookies: Links,
    counters: Arc<Counters>,
    buf: Vec<u8>,
}

impl Exporter {
    /// Until every tap is gone.
    fn run(&mut self, rx: Receiver<Item>) {
        let mut reported = (Instant::now(), 0u64);
        for item in rx {
            self.export(item);
            let c = &self.counters;
            let lost = c.dropped.load(Ordering::Relaxed) + c.unsent.load(Ordering::Relaxed);
            if lost != reported.1 && reported.0.elapsed() >= REPORT_EVERY {
                reported = (Instant::now(), lost);
                tracing::warn!(
                    sent = c.sent.load(Ordering::Relaxed),
                    dropped = c.dropped.load(Ordering::Relaxed),
                    unsent = c.unsent.load(Ordering::Relaxed),
                    "HEP export losing messages"
                );
            }
        }
    }

    fn export(&mut self, item: Item) {
        let correlation = match &item.correlation {
            Correlation::Sip(leg) => correlate::sip(&mut self.legs, &item.bytes, leg.as_deref()),
            Correlation::Ng => correlate::ng(&mut self.cookies, &item.bytes),
            Correlation::Given(c) => Some(c.clone()),
        };
        let capture = tollgate_hep::Capture {
            src: item.src,
            dst: item.dst,
            transport: item.transport,
            time: item.time,
            kind: item.kind,
            agent_id: self.cfg.agent_id,
            password: self.cfg.password.as_deref(),
            correlation: correlation.as_deref(),
            payload: &item.bytes,
        };
        self.buf.clear();
        if let Err(e) = capture.encode(&mut self.buf) {
            self.counters.unencodable.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "message not exported");
            return;
        }
        let counter = match self.send() {
            true => &self.counters.sent,
            false => &self.counters.unsent,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends the packet in `buf`; false when it did not leave.
    fn send(&mut self) -> bool {
        let to = self.collector;
        match &mut self.link {
            Link::Udp(sock) => sock.send_to(&self.buf, to).is_ok(),
            Link::Tcp {
                stream,
                retry_at,
                backoff,
            } => {
                if stream.is_none() && Instant::now() >= *retry_at {
                    *stream = connect(to, backoff, retry_at);
                }
                let Some(s) = stream else {
                    return false;
                };
                if let Err(e) = s.write_all(&self.buf) {
                    tracing::warn!(collector = %to, error = %e, "HEP collector connection lost");
                    *stream = None;
                    *retry_at = Instant::now() + *backoff;
                    return false;
                }
                true
            }
        }
    }
}

/// A new TCP connection to the collector, or none until `retry_at`
/// (doubling `backoff` up to its longest).
fn connect(to: SocketAddr, backoff: &mut Duration, retry_at: &mut Instant) -> Option<TcpStream> {
    let opened = TcpStream::connect_timeout(&to, IO_TIMEOUT).and_then(|s| {
        s.set_nodelay(true)?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(s)
    });
    match opened {
        Ok(s) => {
            tracing::info!(collector = %to, "HEP collector connected (TCP)");
            *backoff = BACKOFF.0;
            Some(s)
        }
        Err(e) => {
            if *backoff == BACKOFF.0 {
                tracing::warn!(collector = %to, error = %e, "HEP collector unreachable; retrying with backoff");
            }
            *retry_at = Instant::now() + *backoff;
            *backoff = (*backoff * 2).min(BACKOFF.1);
            None
        }
    }
}
