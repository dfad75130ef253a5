//! Where the B2BUA thread's messages leave. They leave in the order the
//! B2BUA produced them. A message produced with a CDR (a BYE's 200) waits
//! until that CDR is durable in the spool, and every later message waits
//! behind it; that waiting happens on a sender thread of its own, so the
//! B2BUA thread goes on handling messages (and the spool gathers their
//! CDRs into one sync) instead of stalling on the disk. While nothing is
//! waiting, messages go out at once from the B2BUA thread.

use crate::b2bua::Transport;
use crate::ngserver::wait_durable;
use crate::siptransport::Outbound;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use tollgate_cdr::model::Record;
use tollgate_cdr::spool::Pending;

/// A message to send: how, to whom, what.
pub type Transmit = (Transport, SocketAddr, Vec<u8>);

/// What the sender thread takes: records to wait for, then messages.
struct Batch {
    queued: Vec<(Record, Pending)>,
    out: Vec<Transmit>,
    /// Whether later messages wait behind this batch (it holds a CDR, or
    /// messages that queued behind one).
    gating: bool,
}

/// The two ways out: UDP on the B2BUA's socket, streams through
/// [`Outbound`].
struct Wire {
    sock: UdpSocket,
    outbound: Outbound,
}

impl Wire {
    fn send(&self, out: Vec<Transmit>) {
        for (transport, to, bytes) in out {
            match transport {
                Transport::Udp => {
                    if let Err(e) = self.sock.send_to(&bytes, to) {
                        tracing::debug!(%to, error = %e, "SIP send failed");
                    }
                }
                stream => self.outbound.send(to, stream, &bytes),
            }
        }
    }
}

pub struct Sender {
    wire: Arc<Wire>,
    batches: Option<mpsc::Sender<Batch>>,
    /// Gating batches queued or being sent.
    backlog: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Sender {
    /// Sends on `sock` (a handle to the B2BUA's UDP socket) and through
    /// `outbound`; starts the sender thread.
    pub fn new(sock: UdpSocket, outbound: Outbound) -> std::io::Result<Sender> {
        let wire = Arc::new(Wire { sock, outbound });
        let backlog = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel::<Batch>();
        let (w, b) = (wire.clone(), backlog.clone());
        let thread = std::thread::Builder::new()
            .name("tg-sip-send".into())
            .spawn(move || {
                for batch in rx {
                    wait_durable(batch.queued);
                    w.send(batch.out);
                    if batch.gating {
                        b.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            })?;
        Ok(Sender {
            wire,
            batches: Some(tx),
            backlog,
            thread: Some(thread),
        })
    }

    /// What one input produced: `out`, and the records it queued on the
    /// spool.
    pub fn submit(&self, out: Vec<Transmit>, queued: Vec<(Record, Pending)>) {
        let cdr = queued.iter().any(|(r, _)| matches!(r, Record::Ended(_)));
        let gating = cdr || (!out.is_empty() && self.backlog.load(Ordering::Acquire) > 0);
        let out = if gating {
            self.backlog.fetch_add(1, Ordering::AcqRel);
            out
        } else {
            // Nothing waits ahead: the backlog only drops to 0 once every
            // gating batch is sent, so these cannot overtake one.
            self.wire.send(out);
            Vec::new()
        };
        if gating || !queued.is_empty() {
            // Call events are only written, not awaited; the sender thread
            // logs any that the spool refused.
            if let Some(tx) = &self.batches {
                let _ = tx.send(Batch {
                    queued,
                    out,
                    gating,
                });
            }
        }
    }
}

impl Drop for Sender {
    /// Sends what is still waiting, then stops the thread.
    fn drop(&mut self) {
        self.batches.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
