//! The SIP listener (UDP): datagrams go into the B2BUA in arrival order, a
//! burst at a time, under the lock the NG server also takes (they share the
//! media session manager). What the B2BUA sends out leaves in the same order,
//! once the call records its step produced are durable in the CDR spool:
//! a 200 to a BYE means the call's CDR is on disk. A timer drives the
//! transactions' retransmissions and timeouts, and a task keeps the
//! least-cost routing tables loaded.

use crate::b2bua::config::SipConfig;
use crate::b2bua::{lcr, B2bua, Media};
use crate::ngserver::{durable, NgServer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tollgate_cdr::model::Record;
use tollgate_cdr::spool::Pending;

/// Datagrams taken in one pass under the lock.
const BURST: usize = 64;
/// How often transaction timers are looked at.
const TICK: Duration = Duration::from_millis(10);

type Outgoing = (Vec<(SocketAddr, Vec<u8>)>, Vec<(Record, Pending)>);

fn lock(b: &Mutex<B2bua>) -> std::sync::MutexGuard<'_, B2bua> {
    b.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs one B2BUA step with the media manager at hand; returns what to
/// send and the records queued on the spool.
async fn step(
    ng: &Arc<NgServer>,
    b2b: &Arc<Mutex<B2bua>>,
    f: impl FnOnce(&mut B2bua, &mut Media) + Send + 'static,
) -> Option<Outgoing> {
    let b2b = b2b.clone();
    let (out, queued) = ng
        .with_handler(move |h| {
            let mut b = lock(&b2b);
            let mut media = Media {
                sessions: &mut h.sessions,
                plane: h.plane.as_mut(),
            };
            f(&mut b, &mut media);
            let out: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
            (out, b.take_records())
        })
        .await?;
    Some((out, queued))
}

/// Binds `cfg.listen` and serves until `stop` is set.
pub async fn run(ng: Arc<NgServer>, cfg: SipConfig, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let Some(listen) = cfg.listen else {
        return Ok(());
    };
    let sock = match UdpSocket::bind(listen).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            stop.store(true, Ordering::Relaxed); // the node does not run half-configured
            return Err(e);
        }
    };
    let port = sock.local_addr()?.port();
    let local = SocketAddr::new(cfg.advertise.unwrap_or(listen.ip()), port);
    tracing::info!(%listen, %local, routes = cfg.routes.len(), "SIP B2BUA listening (UDP)");
    let lcr_cfg = cfg.lcr.clone();
    let b2b = Arc::new(Mutex::new(B2bua::new(cfg, local)));
    let lcr = match &lcr_cfg.url {
        Some(url) => {
            let db = lcr::connect(url).await;
            let db = match db {
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
            let task = tokio::spawn(lcr_reloader(
                db,
                url.clone(),
                lcr_cfg.reload_secs,
                b2b.clone(),
            ));
            Some(task)
        }
        None => None,
    };

    // One sender keeps the order steps produced their datagrams in.
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let out_sock = sock.clone();
    let sender = tokio::spawn(async move {
        while let Some((datagrams, queued)) = rx.recv().await {
            durable(queued).await;
            for (to, bytes) in datagrams {
                if let Err(e) = out_sock.send_to(&bytes, to).await {
                    tracing::debug!(%to, error = %e, "SIP send failed");
                }
            }
        }
    });

    let (ng2, b2b2, tx2, stop2) = (ng.clone(), b2b.clone(), tx.clone(), stop.clone());
    let timers = tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !stop2.load(Ordering::Relaxed) {
            tick.tick().await;
            let due = lock(&b2b2)
                .poll_timeout()
                .is_some_and(|t| t <= Instant::now());
            if due {
                if let Some(o) = step(&ng2, &b2b2, |b, m| b.handle_timeout(Instant::now(), m)).await
                {
                    let _ = tx2.send(o);
                }
            }
        }
    });

    let receiver = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let mut burst = vec![(from, buf[..n].to_vec())];
            while burst.len() < BURST {
                match sock.try_recv_from(&mut buf) {
                    Ok((n, from)) => burst.push((from, buf[..n].to_vec())),
                    Err(_) => break,
                }
            }
            let o = step(&ng, &b2b, move |b, m| {
                let now = Instant::now();
                for (from, bytes) in &burst {
                    b.on_datagram(now, *from, bytes, m);
                }
            })
            .await;
            if let Some(o) = o {
                let _ = tx.send(o);
            }
        }
    });

    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver.abort();
    timers.abort();
    if let Some(t) = lcr {
        t.abort();
    }
    sender.abort();
    Ok(())
}

/// Loads the LCR tables every `every_secs`, and writes gateway
/// health back; reconnects when the database was unavailable.
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
