//! SIP stream transports for the B2BUA's thread: receivers that turn
//! TCP/TLS byte streams (framed by Content-Length) into [`Inbound`]
//! messages in its [`Inbox`] (UDP it reads itself), and the open stream connections by
//! peer ([`Connections`]) through which responses and requests to stream
//! peers leave ([`Outbound`], which opens TCP and TLS connections to
//! targets on demand). TCP runs on blocking threads (one per connection);
//! TLS (rustls: the configured certificate when serving, the configured or
//! system CAs when calling out) on tokio tasks, whose writer takes bytes
//! from a channel. WebSocket connections (`sipws`) use the same queues.

use crate::b2bua::Transport;
use crate::sipinbox::{Inbound, Inbox};
use crate::sync::lock;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_sip::message::{Message, ParseError};

/// A TCP or TLS peer that sends this much without completing a message is
/// cut off.
const MAX_STREAM_BUFFER: usize = 1 << 20;

/// How to write to an open stream connection: a TCP socket the reader
/// shares (reads and writes go through shared references), or the queue of
/// a task writing one (TLS, WebSocket), one whole message per item.
#[derive(Clone)]
pub enum Conn {
    Tcp(Arc<TcpStream>),
    Queued(tokio::sync::mpsc::UnboundedSender<Vec<u8>>),
}

/// The open stream connections, by peer.
pub type Connections = Arc<Mutex<HashMap<SocketAddr, Conn>>>;

/// Queues every whole message at the front of `buf`. False when the stream
/// is out of step (what is left goes to the B2BUA, which answers 400 if it
/// can) or the B2BUA is gone: the connection is to be closed.
fn take_frames(buf: &mut Vec<u8>, peer: SocketAddr, transport: Transport, tx: &Inbox) -> bool {
    loop {
        match Message::parse_stream(buf) {
            Ok((_, used)) => {
                let msg: Vec<u8> = buf.drain(..used).collect();
                if !tx.send(Inbound::Stream(peer, transport, msg)) {
                    return false;
                }
            }
            Err(ParseError::Incomplete) if buf.len() < MAX_STREAM_BUFFER => return true,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "SIP stream out of step; closing");
                let _ = tx.send(Inbound::Stream(peer, transport, std::mem::take(buf)));
                return false;
            }
        }
    }
}

fn receive_tcp(stream: Arc<TcpStream>, peer: SocketAddr, tx: Inbox, conns: Connections) {
    let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 65536]);
    while take_frames(&mut buf, peer, Transport::Tcp, &tx) {
        match (&*stream).read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    lock(&conns).remove(&peer);
}

/// Accepts TCP connections for as long as the process runs.
pub fn accept_tcp(listener: TcpListener, tx: Inbox, conns: Connections) {
    for stream in listener.incoming().flatten() {
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        track(stream, peer, &tx, &conns);
    }
}

/// Registers a TCP connection and starts its reader; returns it for writing.
fn track(stream: TcpStream, peer: SocketAddr, tx: &Inbox, conns: &Connections) -> Arc<TcpStream> {
    let _ = stream.set_nodelay(true);
    let stream = Arc::new(stream);
    lock(conns).insert(peer, Conn::Tcp(stream.clone()));
    let (reader, tx, conns) = (stream.clone(), tx.clone(), conns.clone());
    let _ = std::thread::Builder::new()
        .name("tg-sip-tcp".into())
        .spawn(move || receive_tcp(reader, peer, tx, conns));
    stream
}

/// Where stream messages leave: the open connections, and how to open new
/// ones (TCP directly; TLS on the runtime, verified against `tls`'s roots).
pub struct Outbound {
    pub conns: Connections,
    pub tx: Inbox,
    pub tls: Option<(tokio::runtime::Handle, tokio_rustls::TlsConnector)>,
}

impl Outbound {
    /// Sends over the stream connection with `to`, opening one if there is
    /// none. A TLS connection being opened queues what is sent meanwhile.
    pub fn send(&self, to: SocketAddr, transport: Transport, bytes: &[u8]) {
        let existing = lock(&self.conns).get(&to).cloned();
        let stream = match (existing, transport) {
            (Some(Conn::Queued(w)), _) => {
                let _ = w.send(bytes.to_vec());
                return;
            }
            (Some(Conn::Tcp(s)), _) => s,
            (None, Transport::Tls) => return self.open_tls(to, bytes),
            (None, Transport::Ws | Transport::Wss) => {
                tracing::debug!(%to, "no WebSocket connection with this peer (browsers connect, we do not); not sent");
                return;
            }
            (None, _) => match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
                Ok(s) => track(s, to, &self.tx, &self.conns),
                Err(e) => {
                    tracing::debug!(%to, error = %e, "SIP TCP connect failed");
                    return;
                }
            },
        };
        if let Err(e) = (&*stream).write_all(bytes) {
            tracing::debug!(%to, error = %e, "SIP TCP send failed");
        }
    }

    fn open_tls(&self, to: SocketAddr, first: &[u8]) {
        let Some((rt, connector)) = &self.tls else {
            tracing::warn!(%to, "a target asks for TLS but no TLS client is configured");
            return;
        };
        let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let _ = out_tx.send(first.to_vec());
        lock(&self.conns).insert(to, Conn::Queued(out_tx));
        let (connector, tx, conns) = (connector.clone(), self.tx.clone(), self.conns.clone());
        rt.spawn(async move {
            let name = rustls::pki_types::ServerName::IpAddress(to.ip().into());
            let opened = match tokio::net::TcpStream::connect(to).await {
                Ok(sock) => connector.connect(name, sock).await,
                Err(e) => Err(e),
            };
            match opened {
                Ok(tls) => session(tls, to, out_rx, tx, conns).await,
                Err(e) => {
                    tracing::warn!(%to, error = %e, "SIP TLS connection failed");
                    lock(&conns).remove(&to);
                }
            }
        });
    }
}

/// The TLS server configuration from PEM files, with errors naming them.
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect())
        .map_err(|e| format!("sip.tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "sip.tls_cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("sip.tls_key {}: {e}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("sip.tls_cert/tls_key: {e}"))
}

/// Accepts TLS connections on `listener` for as long as the task runs.
pub async fn accept_tls(
    listener: tokio::net::TcpListener,
    config: rustls::ServerConfig,
    tx: Inbox,
    conns: Connections,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((sock, peer)) = listener.accept().await else {
            continue;
        };
        let (acceptor, tx, conns) = (acceptor.clone(), tx.clone(), conns.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(sock).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
            lock(&conns).insert(peer, Conn::Queued(out_tx));
            session(tls, peer, out_rx, tx, conns).await;
        });
    }
}

/// One TLS connection, either side: messages read are queued for the
/// B2BUA, bytes from `out` are written, until either end closes.
async fn session<S>(
    tls: S,
    peer: SocketAddr,
    mut out: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    tx: Inbox,
    conns: Connections,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(tls);
    let writer = tokio::spawn(async move {
        while let Some(b) = out.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 65536]);
    while take_frames(&mut buf, peer, Transport::Tls, &tx) {
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    lock(&conns).remove(&peer);
    writer.abort();
}

/// The TLS client configuration: targets are verified against the CA
/// certificates in `ca` (PEM), or the system's roots without one.
pub fn tls_client_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(p) => {
            for c in CertificateDer::pem_file_iter(p)
                .map_err(|e| format!("sip.tls_ca {}: {e}", p.display()))?
            {
                let c = c.map_err(|e| format!("sip.tls_ca {}: {e}", p.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("sip.tls_ca {}: {e}", p.display()))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs()
                .map_err(|e| format!("system CA certificates: {e}"))?
            {
                let _ = roots.add(c);
            }
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth())
}
