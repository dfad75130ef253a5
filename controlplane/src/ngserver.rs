//! The NG listeners: UDP datagrams and TCP streams on the same address, as
//! rtpengine serves them. A request whose cookie was seen from the same peer
//! in the last [`CACHE_FOR`] gets the cached reply again instead of a second
//! action (Kamailio retransmits when a reply is slow; a retransmission comes
//! from the same socket, so two clients reusing a cookie do not collide). Malformed messages get an
//! error reply when they carry a cookie and are counted either way; the
//! count is in `statistics` as `totalstatistics.malformedmessages`.
//!
//! Call events and CDRs a request produces are queued on the CDR spool in
//! the order the requests were handled, and the reply goes out only once
//! they are written and its CDRs durable: a `delete` answered means its
//! CDR is on disk (call events are synced with the next CDR, or soon).
//! Recordings the request closed are handed to the archive's spool there
//! too, before the reply.

use crate::hep::Tap;
use crate::ng::config::NgConfig;
use crate::ng::NgHandler;
use crate::sync::lock;
use crate::time::Now;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tollgate_cdr::model::Record;
use tollgate_cdr::spool::{Pending, Spool};
use tollgate_ng::{Message, MessageError, Value};

pub const CACHE_FOR: Duration = Duration::from_secs(30);

/// A request's peer and cookie.
type CacheKey = (SocketAddr, Vec<u8>);

pub struct NgServer {
    pub handler: Arc<Mutex<NgHandler>>,
    cache: Mutex<HashMap<CacheKey, (Instant, Vec<u8>)>>,
    pub malformed: AtomicU64,
    /// Messages dropped because their source is not in `ng.allow`.
    pub refused: AtomicU64,
    spool: Arc<Spool>,
    /// Where messages are exported as HEP (SIP always, NG with `hep.ng`).
    pub hep: Option<Tap>,
    /// Counters for the HTTP server's metrics (SIP's too: every record
    /// and the SIP thread pass here).
    pub observed: Arc<crate::http::meters::Observed>,
    /// Where the cores' call state goes to survive a restart.
    pub journal: Option<Arc<crate::journal::Shared>>,
}

impl NgServer {
    pub fn new(
        handler: NgHandler,
        spool: Arc<Spool>,
        hep: Option<Tap>,
        journal: Option<Arc<crate::journal::Shared>>,
    ) -> Arc<Self> {
        Arc::new(NgServer {
            handler: Arc::new(Mutex::new(handler)),
            cache: Mutex::new(HashMap::new()),
            malformed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            spool,
            hep,
            observed: Arc::default(),
            journal,
        })
    }

    /// Runs `f` on the handler (off the async threads) and queues the
    /// records it returned and the session manager produced, in order,
    /// while still holding the handler.
    async fn with_handler<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut NgHandler) -> (T, Vec<Record>) + Send + 'static,
    ) -> Option<(T, Vec<(Record, Pending)>)> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.with_handler_here(f))
            .await
            .ok()
    }

    /// True while new calls are refused because the CDR spool cannot write
    /// and holds records in memory.
    pub fn spool_holding(&self) -> bool {
        self.spool.refusing_calls()
    }

    /// Writes the call-state journal entries held since the last time (call
    /// once the CDRs of the same requests are durable).
    pub fn flush_journal(&self) {
        if let Some(j) = &self.journal {
            j.flush();
        }
    }

    /// [`NgServer::with_handler`] on the calling thread.
    pub fn with_handler_here<T>(
        &self,
        f: impl FnOnce(&mut NgHandler) -> (T, Vec<Record>),
    ) -> (T, Vec<(Record, Pending)>) {
        let mut h = lock(&self.handler);
        h.spool_holding = self.spool.refusing_calls();
        let (out, mut records) = f(&mut h);
        records.extend(h.sessions.take_records());
        if let Some(j) = &self.journal {
            j.hold(crate::journal::MEDIA, h.sessions.take_journal());
        }
        for closed in h.sessions.take_recordings() {
            crate::recording::publish::publish(&closed);
        }
        self.observed.calls.on_records(&records);
        // Only a CDR is acknowledged on (a BYE's 200, a delete's reply):
        // call events ride on its sync, and nobody waits for them.
        let queued = records
            .into_iter()
            .filter_map(|r| {
                if r.is_cdr() {
                    let p = self.spool.append(&r);
                    Some((r, p))
                } else {
                    self.spool.append_lazy(&r);
                    None
                }
            })
            .collect();
        (out, queued)
    }

    /// The reply bytes for one parsed message (cached by cookie).
    async fn reply(self: &Arc<Self>, peer: SocketAddr, m: Message) -> Vec<u8> {
        let key = (peer, m.cookie.clone());
        if let Some((_, r)) = self.cache.lock().expect("cache").get(&key) {
            return r.clone();
        }
        let head = m.reply(Value::Int(0));
        let body = m.body;
        let command = body
            .get("command")
            .and_then(Value::as_str)
            .map(str::to_string);
        let statistics = command.as_deref() == Some("statistics");
        let reply = match self
            .with_handler(move |h| (h.handle(Now::real(), &body), Vec::new()))
            .await
        {
            Some((mut reply, queued)) => {
                durable(queued).await;
                self.flush_journal();
                if statistics {
                    self.add_malformed(&mut reply);
                }
                reply
            }
            None => Value::dict([
                ("result", Value::str("error")),
                ("error-reason", Value::str("internal error")),
            ]),
        };
        let failed = reply.get("result").and_then(Value::as_str) == Some("error");
        self.observed.ng.count(command.as_deref(), failed);
        let bytes = head.reply(reply).encode();
        self.cache
            .lock()
            .expect("cache")
            .insert(key, (Instant::now(), bytes.clone()));
        bytes
    }

    /// Puts the malformed-message count into a `statistics` reply.
    fn add_malformed(&self, reply: &mut Value) {
        let total = reply
            .as_dict_mut()
            .and_then(|r| r.get_mut(b"statistics".as_slice()))
            .and_then(Value::as_dict_mut)
            .and_then(|s| s.get_mut(b"totalstatistics".as_slice()));
        if let Some(total) = total {
            let n = self.malformed.load(Ordering::Relaxed);
            total.set("malformedmessages", Value::Int(n as i64));
        }
    }

    /// The error reply to a message that cannot be decoded (none without a
    /// cookie), in the format the message was written in.
    fn bad(&self, raw: &[u8], cookie: Option<Vec<u8>>, e: MessageError) -> Option<Vec<u8>> {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "malformed NG message");
        let body = Value::dict([
            ("result", Value::str("error")),
            ("error-reason", Value::str(&e.to_string())),
        ]);
        cookie.map(|cookie| {
            let format = Message::format_of(raw);
            Message {
                cookie,
                body,
                format,
            }
            .encode()
        })
    }

    /// True when `from` may not use NG: counted, and logged for its first
    /// message and then at every power of two, so a flood cannot fill logs.
    fn refuse(&self, cfg: &NgConfig, from: SocketAddr) -> bool {
        if cfg.allows(from.ip()) {
            return false;
        }
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(%from, refused = n, "NG message from a source not in ng.allow; dropped");
        }
        true
    }

    pub async fn serve_udp(self: Arc<Self>, sock: UdpSocket, cfg: Arc<NgConfig>) {
        let mut buf = vec![0u8; 65536];
        let local = sock.local_addr().ok();
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            if self.refuse(&cfg, from) {
                continue;
            }
            self.export(Some(from), local, false, &buf[..n]);
            let out = match Message::decode_prefix(&buf[..n]) {
                Ok((m, _)) => Some(self.reply(from, m).await),
                // A datagram is the whole message: incomplete means truncated.
                Err((cookie, e)) => self.bad(&buf[..n], cookie, e),
            };
            if let Some(out) = out {
                self.export(local, Some(from), false, &out);
                let _ = sock.send_to(&out, from).await;
            }
        }
    }

    pub async fn serve_tcp(self: Arc<Self>, listener: TcpListener, cfg: Arc<NgConfig>) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            if self.refuse(&cfg, peer) {
                continue; // dropping the stream closes it
            }
            tokio::spawn(self.clone().tcp_connection(stream, peer));
        }
    }

    async fn tcp_connection(self: Arc<Self>, mut stream: TcpStream, peer: SocketAddr) {
        let local = stream.local_addr().ok();
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 65536];
        loop {
            match Message::decode_prefix(&buf) {
                Ok((m, used)) => {
                    let gap = buf[used..]
                        .iter()
                        .take_while(|b| b.is_ascii_whitespace())
                        .count();
                    self.export(Some(peer), local, true, &buf[..used]);
                    buf.drain(..used + gap);
                    let out = self.reply(peer, m).await;
                    self.export(local, Some(peer), true, &out);
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err((_, MessageError::Incomplete)) if buf.len() < 1 << 20 => {}
                Err((cookie, e)) => {
                    // The stream is out of step: answer if we can, then close.
                    if let Some(out) = self.bad(&buf, cookie, e) {
                        let _ = stream.write_all(&out).await;
                    }
                    return;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Hands an NG message to the HEP exporter, if there is one.
    fn export(&self, src: Option<SocketAddr>, dst: Option<SocketAddr>, tcp: bool, bytes: &[u8]) {
        if let (Some(hep), Some(src), Some(dst)) = (&self.hep, src, dst) {
            hep.ng(src, dst, tcp, bytes);
        }
    }

    /// Once a second: timeouts and delayed deletes, and cache expiry.
    pub async fn housekeeping(self: Arc<Self>, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(((), queued)) = self
                .with_handler(|h| (h.tick(Now::real()), Vec::new()))
                .await
            {
                durable(queued).await;
                self.flush_journal();
            }
            self.cache
                .lock()
                .expect("cache")
                .retain(|_, (t, _)| t.elapsed() < CACHE_FOR);
        }
    }
}

/// Waits until the queued records are on disk. One that cannot be written
/// is logged whole, at error level, so it is not lost silently.
async fn durable(queued: Vec<(Record, Pending)>) {
    for (rec, pending) in queued {
        if let Err(e) = pending.durable().await {
            not_spooled(&rec, &e);
        }
    }
}

/// [`durable`] for a thread outside the async runtime.
pub fn wait_durable(queued: Vec<(Record, Pending)>) {
    for (rec, pending) in queued {
        if let Err(e) = pending.wait() {
            not_spooled(&rec, &e);
        }
    }
}

fn not_spooled(rec: &Record, e: &tollgate_cdr::spool::SpoolError) {
    if let tollgate_cdr::spool::SpoolError::Held(why) = e {
        // The spool logged the cause once and writes the record later.
        tracing::debug!(call_id = rec.call_id(), why, "CDR held in memory");
        return;
    }
    tracing::error!(call_id = rec.call_id(), error = %e,
        record = %serde_json::to_string(rec).unwrap_or_default(),
        "CDR not spooled");
}

/// Binds UDP and TCP on `ng.listen` and serves until `stop` is set.
pub async fn run(
    server: Arc<NgServer>,
    cfg: NgConfig,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let listen = cfg.listen;
    let udp = UdpSocket::bind(listen).await?;
    let tcp = TcpListener::bind(listen).await?;
    tracing::info!(%listen, allow = ?cfg.allow, "NG control protocol listening (UDP and TCP)");
    if let Some(w) = cfg.warning() {
        tracing::warn!("{w}");
    }
    server.observed.ng_listening();
    let cfg = Arc::new(cfg);
    let tasks = [
        tokio::spawn(server.clone().serve_udp(udp, cfg.clone())),
        tokio::spawn(server.clone().serve_tcp(tcp, cfg)),
        tokio::spawn(server.clone().housekeeping(stop.clone())),
    ];
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        t.abort();
    }
    Ok(())
}
