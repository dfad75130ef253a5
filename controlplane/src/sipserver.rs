//! The SIP listener (UDP) on its own thread: a burst of datagrams is read,
//! handed to the B2BUA in arrival order under the lock the NG server also
//! takes (they share the media session manager), due timers are run, and
//! what the B2BUA sends leaves once the call records the step produced are
//! durable in the CDR spool: a 200 to a BYE means the call's CDR is on disk.
//! While one step waits for the disk, datagrams queue in the socket and the
//! next step takes them together (group commit across calls). One thread and
//! blocking calls: no hand-offs between threads per message, which cost more
//! than the SIP work itself. A tokio task keeps the least-cost routing
//! tables loaded.

use crate::b2bua::config::SipConfig;
use crate::b2bua::{lcr, B2bua, Media};
use crate::ngserver::{wait_durable, NgServer};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Datagrams taken in one step.
const BURST: usize = 64;
/// The longest the thread sleeps, so it notices `stop`.
const NAP: Duration = Duration::from_millis(50);

fn lock(b: &Mutex<B2bua>) -> std::sync::MutexGuard<'_, B2bua> {
    b.lock().unwrap_or_else(|p| p.into_inner())
}

/// Binds `cfg.listen`, loads the LCR tables, and serves on a thread of its
/// own until `stop` is set. Returns when the listener is up (or not).
pub async fn run(ng: Arc<NgServer>, cfg: SipConfig, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let Some(listen) = cfg.listen else {
        return Ok(());
    };
    let sock = match UdpSocket::bind(listen) {
        Ok(s) => s,
        Err(e) => {
            stop.store(true, Ordering::Relaxed); // the node does not run half-configured
            return Err(e);
        }
    };
    let local = SocketAddr::new(
        cfg.advertise.unwrap_or(listen.ip()),
        sock.local_addr()?.port(),
    );
    tracing::info!(%listen, %local, routes = cfg.routes.len(), "SIP B2BUA listening (UDP)");
    let lcr_cfg = cfg.lcr.clone();
    let b2b = Arc::new(Mutex::new(B2bua::new(cfg, local)));
    let reloader = match &lcr_cfg.url {
        Some(url) => {
            let db = match lcr::connect(url).await {
                Ok(db) => {
                    // Routes are ready before the first INVITE is read.
                    match lcr::load(&db).await {
                        Ok(t) => lock(&b2b).set_lcr(t),
                        Err(e) => tracing::error!(error = %e, "reading the LCR tables failed"),
                    }
                    Some(db)
                }
                Err(e) => {
                    tracing::error!(error = %e, "LCR database unavailable; `lcr` routes get 503 until it is back");
                    None
                }
            };
            Some(tokio::spawn(lcr_reloader(
                db,
                url.clone(),
                lcr_cfg.reload_secs,
                b2b.clone(),
            )))
        }
        None => None,
    };
    let stop2 = stop.clone();
    let serving = std::thread::Builder::new()
        .name("tg-sip".into())
        .spawn(move || serve(sock, &ng, &b2b, &stop2))?;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(t) = reloader {
        t.abort();
    }
    let _ = tokio::task::spawn_blocking(move || serving.join()).await;
    Ok(())
}

fn serve(sock: UdpSocket, ng: &NgServer, b2b: &Mutex<B2bua>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    let mut burst: Vec<(SocketAddr, Vec<u8>)> = Vec::with_capacity(BURST);
    while !stop.load(Ordering::Relaxed) {
        let wait = lock(b2b)
            .poll_timeout()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(NAP)
            .clamp(Duration::from_millis(1), NAP);
        let _ = sock.set_read_timeout(Some(wait));
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => burst.push((from, buf[..n].to_vec())),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => tracing::debug!(error = %e, "SIP receive failed"),
        }
        if !burst.is_empty() && sock.set_nonblocking(true).is_ok() {
            while burst.len() < BURST {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => burst.push((from, buf[..n].to_vec())),
                    Err(_) => break,
                }
            }
            let _ = sock.set_nonblocking(false);
        }
        let (out, queued) = ng.with_handler_here(|h| {
            let mut b = lock(b2b);
            let mut media = Media {
                sessions: &mut h.sessions,
                plane: h.plane.as_mut(),
            };
            let now = Instant::now();
            for (from, bytes) in burst.drain(..) {
                b.on_datagram(now, from, &bytes, &mut media);
            }
            b.handle_timeout(now, &mut media);
            let out: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
            (out, b.take_records())
        });
        wait_durable(queued);
        for (to, bytes) in out {
            if let Err(e) = sock.send_to(&bytes, to) {
                tracing::debug!(%to, error = %e, "SIP send failed");
            }
        }
    }
}

/// Loads the LCR tables every `every_secs`, and writes gateway health
/// back; reconnects when the database was unavailable.
async fn lcr_reloader(
    mut db: Option<lcr::LcrDb>,
    url: String,
    every_secs: u64,
    b2b: Arc<Mutex<B2bua>>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(every_secs)).await;
        if db.is_none() {
            db = lcr::connect(&url)
                .await
                .map_err(|e| tracing::warn!(error = %e, "LCR database still unavailable"))
                .ok();
        }
        if let Some(d) = &db {
            match lcr::load(d).await {
                Ok(t) => lock(&b2b).set_lcr(t),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the LCR tables failed; keeping the last ones")
                }
            }
            let health = lock(&b2b).take_health();
            if let Err(e) = lcr::store_health(d, &health).await {
                tracing::warn!(error = %e, "writing LCR gateway health failed");
            }
        }
    }
}
