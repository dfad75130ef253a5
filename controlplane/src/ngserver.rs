//! The NG listeners: UDP datagrams and TCP streams on the same address, as
//! rtpengine serves them. A request whose cookie was seen from the same peer
//! in the last [`CACHE_FOR`] gets the cached reply again instead of a second
//! action (Kamailio retransmits when a reply is slow; a retransmission comes
//! from the same socket, so two clients reusing a cookie do not collide). Malformed messages get an
//! error reply when they carry a cookie and are counted either way.

use crate::ng::NgHandler;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tollgate_ng::{Message, MessageError, Value};

pub const CACHE_FOR: Duration = Duration::from_secs(30);

/// A request's peer and cookie.
type CacheKey = (SocketAddr, Vec<u8>);

pub struct NgServer {
    pub handler: Arc<Mutex<NgHandler>>,
    cache: Mutex<HashMap<CacheKey, (Instant, Vec<u8>)>>,
    pub malformed: AtomicU64,
}

fn lock(h: &Mutex<NgHandler>) -> std::sync::MutexGuard<'_, NgHandler> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

impl NgServer {
    pub fn new(handler: NgHandler) -> Arc<Self> {
        Arc::new(NgServer {
            handler: Arc::new(Mutex::new(handler)),
            cache: Mutex::new(HashMap::new()),
            malformed: AtomicU64::new(0),
        })
    }

    /// The reply bytes for one parsed message (cached by cookie).
    async fn reply(self: &Arc<Self>, peer: SocketAddr, m: Message) -> Vec<u8> {
        let key = (peer, m.cookie.clone());
        if let Some((_, r)) = self.cache.lock().expect("cache").get(&key) {
            return r.clone();
        }
        let me = self.clone();
        let body = m.body;
        let reply = tokio::task::spawn_blocking(move || lock(&me.handler).handle(&body))
            .await
            .unwrap_or_else(|_| {
                Value::dict([
                    ("result", Value::str("error")),
                    ("error-reason", Value::str("internal error")),
                ])
            });
        let bytes = Message::new(&m.cookie, reply).encode();
        self.cache
            .lock()
            .expect("cache")
            .insert(key, (Instant::now(), bytes.clone()));
        bytes
    }

    fn bad(&self, cookie: Option<Vec<u8>>, e: MessageError) -> Option<Vec<u8>> {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "malformed NG message");
        let body = Value::dict([
            ("result", Value::str("error")),
            ("error-reason", Value::str(&e.to_string())),
        ]);
        cookie.map(|c| Message::new(&c, body).encode())
    }

    pub async fn serve_udp(self: Arc<Self>, sock: UdpSocket) {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let out = match Message::decode_prefix(&buf[..n]) {
                Ok((m, _)) => Some(self.reply(from, m).await),
                // A datagram is the whole message: incomplete means truncated.
                Err((cookie, e)) => self.bad(cookie, e),
            };
            if let Some(out) = out {
                let _ = sock.send_to(&out, from).await;
            }
        }
    }

    pub async fn serve_tcp(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(self.clone().tcp_connection(stream, peer));
        }
    }

    async fn tcp_connection(self: Arc<Self>, mut stream: TcpStream, peer: SocketAddr) {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 65536];
        loop {
            match Message::decode_prefix(&buf) {
                Ok((m, used)) => {
                    let gap = buf[used..]
                        .iter()
                        .take_while(|b| b.is_ascii_whitespace())
                        .count();
                    buf.drain(..used + gap);
                    let out = self.reply(peer, m).await;
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err((_, MessageError::Incomplete)) if buf.len() < 1 << 20 => {}
                Err((cookie, e)) => {
                    // The stream is out of step: answer if we can, then close.
                    if let Some(out) = self.bad(cookie, e) {
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

    /// Once a second: timeouts and delayed deletes, and cache expiry.
    pub async fn housekeeping(self: Arc<Self>, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || lock(&me.handler).tick()).await;
            self.cache
                .lock()
                .expect("cache")
                .retain(|_, (t, _)| t.elapsed() < CACHE_FOR);
        }
    }
}

/// Binds UDP and TCP on `listen` and serves until `stop` is set.
pub async fn run(
    server: Arc<NgServer>,
    listen: SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let udp = UdpSocket::bind(listen).await?;
    let tcp = TcpListener::bind(listen).await?;
    tracing::info!(%listen, "NG control protocol listening (UDP and TCP)");
    let tasks = [
        tokio::spawn(server.clone().serve_udp(udp)),
        tokio::spawn(server.clone().serve_tcp(tcp)),
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
