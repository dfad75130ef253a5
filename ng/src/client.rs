//! A blocking NG client over UDP: sends a command with a fresh cookie,
//! retransmits on silence, and returns the reply whose cookie matches.

use crate::bencode::Value;
use crate::message::Message;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("NG {0}: {1}")]
    Io(SocketAddr, io::Error),
    #[error("NG {0}: no reply after {1} attempts")]
    Timeout(SocketAddr, u32),
    /// The relay answered `result: error`.
    #[error("NG error: {0}")]
    Refused(String),
}

/// Cookies must not repeat between clients of one process: relays cache
/// replies by cookie.
static NEXT_COOKIE: AtomicU64 = AtomicU64::new(0);

pub struct NgClient {
    sock: UdpSocket,
    server: SocketAddr,
    pub timeout: Duration,
    pub attempts: u32,
}

impl NgClient {
    pub fn new(server: SocketAddr) -> Result<Self, ClientError> {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .expect("literal");
        let sock = UdpSocket::bind(bind).map_err(|e| ClientError::Io(server, e))?;
        Ok(NgClient {
            sock,
            server,
            timeout: Duration::from_secs(1),
            attempts: 3,
        })
    }

    /// Sends `body` and returns the reply dictionary, whatever its `result`.
    pub fn raw(&mut self, body: Value) -> Result<Value, ClientError> {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let n = NEXT_COOKIE.fetch_add(1, Ordering::Relaxed);
        let cookie = format!("{}_{started:x}_{n}", std::process::id());
        let msg = Message::new(cookie.as_bytes(), body).encode();
        let mut buf = vec![0u8; 65536];
        self.sock
            .set_read_timeout(Some(self.timeout))
            .map_err(|e| ClientError::Io(self.server, e))?;
        for _ in 0..self.attempts {
            self.sock
                .send_to(&msg, self.server)
                .map_err(|e| ClientError::Io(self.server, e))?;
            loop {
                match self.sock.recv_from(&mut buf) {
                    Ok((n, from)) if from == self.server => {
                        if let Ok((m, _)) = Message::decode_prefix(&buf[..n]) {
                            if m.cookie == cookie.as_bytes() {
                                return Ok(m.body);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(ClientError::Io(self.server, e)),
                }
            }
        }
        Err(ClientError::Timeout(self.server, self.attempts))
    }

    /// Sends a command with `params`; an `error` result becomes [`ClientError::Refused`].
    pub fn command<'a>(
        &mut self,
        command: &str,
        params: impl IntoIterator<Item = (&'a str, Value)>,
    ) -> Result<Value, ClientError> {
        let mut body = Value::dict(params);
        body.set("command", Value::str(command));
        let reply = self.raw(body)?;
        if reply.get("result").and_then(Value::as_str) == Some("error") {
            let why = reply
                .get("error-reason")
                .and_then(Value::as_str)
                .unwrap_or("unspecified")
                .to_string();
            return Err(ClientError::Refused(why));
        }
        Ok(reply)
    }
}
