//! SIP over WebSocket (RFC 7118), the browsers' transport: WS and WSS
//! listeners on tokio tasks that turn each WebSocket message (one whole SIP
//! message, §5) into an [`Inbound`] for the B2BUA's thread, and write what
//! the B2BUA sends back on the same connection, through the queue
//! [`Conn::Queued`] shared with TLS. A browser cannot be called on a
//! connection of our making, so requests to it (a call to a user it
//! registered) go over the connection its REGISTER came in on.
//!
//! The WebSocket protocol itself is `tokio-tungstenite`'s; this module
//! adds the `sip` subprotocol rule: a handshake that does not offer it is
//! refused with 400, as it is not a SIP client.

use crate::b2bua::Transport;
use crate::sipinbox::{Inbound, Inbox};
use crate::siptransport::{Conn, Connections};
use crate::sync::lock;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{http, Message};

/// The WebSocket subprotocol of SIP (RFC 7118 §4.1).
const SUBPROTOCOL: &str = "sip";

/// The largest message taken: far above any SIP message a browser sends.
const MAX_MESSAGE: usize = 1 << 20;

/// Accepts WebSocket connections on `listener` for as long as the task
/// runs: over TLS with `tls` (WSS), plain without (WS).
pub async fn accept_ws(
    listener: tokio::net::TcpListener,
    tls: Option<rustls::ServerConfig>,
    tx: Inbox,
    conns: Connections,
) {
    let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
    loop {
        let Ok((sock, peer)) = listener.accept().await else {
            continue;
        };
        let _ = sock.set_nodelay(true);
        let (acceptor, tx, conns) = (acceptor.clone(), tx.clone(), conns.clone());
        tokio::spawn(async move {
            match acceptor {
                Some(a) => match a.accept(sock).await {
                    Ok(tls) => connection(tls, peer, Transport::Wss, tx, conns).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "WSS: TLS handshake failed"),
                },
                None => connection(sock, peer, Transport::Ws, tx, conns).await,
            }
        });
    }
}

/// Answers the WebSocket handshake, then carries SIP messages both ways
/// until either end closes.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    tx: Inbox,
    conns: Connections,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE));
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(stream, sip_only, Some(config))
        .await
    {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "SIP WebSocket handshake refused or failed");
            return;
        }
    };
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    lock(&conns).insert(peer, Conn::Queued(out_tx));
    let writer = tokio::spawn(async move {
        while let Some(bytes) = out.recv().await {
            if sink.send(frame(bytes)).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(msg)) = source.next().await {
        let bytes = match msg {
            Message::Text(_) | Message::Binary(_) => msg.into_data(),
            Message::Close(_) => break,
            // Pings are answered by the protocol layer; pongs need nothing.
            _ => continue,
        };
        if !tx.send(Inbound::Stream(peer, transport, bytes.to_vec())) {
            break;
        }
    }
    lock(&conns).remove(&peer);
    writer.abort();
}

/// A SIP message as a WebSocket message: text when it is UTF-8 (as every
/// SIP message without a binary body is), binary otherwise (§5).
fn frame(bytes: Vec<u8>) -> Message {
    match String::from_utf8(bytes) {
        Ok(text) => Message::text(text),
        Err(e) => Message::binary(e.into_bytes()),
    }
}

/// The handshake callback: accepts a client offering the `sip`
/// subprotocol, naming it in the response; refuses any other with 400.
#[allow(clippy::result_large_err)] // the signature is tungstenite's
fn sip_only(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offered = req
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL));
    if !offered {
        let mut refusal = ErrorResponse::new(Some(
            "SIP over WebSocket needs the \"sip\" subprotocol (RFC 7118)".into(),
        ));
        *refusal.status_mut() = http::StatusCode::BAD_REQUEST;
        return Err(refusal);
    }
    resp.headers_mut().insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(protocols: Option<&str>) -> Request {
        let mut b = http::Request::builder().uri("/");
        if let Some(p) = protocols {
            b = b.header(http::header::SEC_WEBSOCKET_PROTOCOL, p);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn the_sip_subprotocol_is_required_and_echoed() {
        let ok = sip_only(&handshake(Some("chat, SIP")), Response::default()).expect("accepted");
        assert_eq!(ok.headers()[http::header::SEC_WEBSOCKET_PROTOCOL], "sip");
        for refused in [None, Some("chat")] {
            let e = sip_only(&handshake(refused), Response::default()).expect_err("refused");
            assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
            assert!(e.body().as_deref().unwrap_or("").contains("RFC 7118"));
        }
    }

    #[test]
    fn messages_go_as_text_unless_they_are_not_utf8() {
        assert!(matches!(
            frame(b"OPTIONS sip:x SIP/2.0\r\n\r\n".to_vec()),
            Message::Text(_)
        ));
        assert!(matches!(frame(vec![0xff, 0xfe]), Message::Binary(_)));
    }
}
