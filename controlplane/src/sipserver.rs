//! The B2BUA's thread and what feeds it. The thread reads its UDP socket
//! itself (`sipinbox`); TCP on `sip.listen`, TLS on `sip.tls_listen`
//! (`siptransport`) and WebSocket on `sip.ws_listen`/`wss_listen`
//! (`sipws`) queue framed messages for it. The thread takes a
//! burst of both and hands it to the B2BUA in arrival order, each message
//! under the lock the NG server also takes (they share the media session
//! manager), then runs due timers. What a message produced is sent at
//! once until a message produces a CDR: from there on, the step's messages
//! leave in order once its CDRs are durable in the spool, so a 200 to a
//! BYE means the call's CDR is on disk. While one step waits for the disk, messages
//! queue and the next step takes them together (group commit across
//! calls). Blocking threads rather than tokio tasks: per-message hand-offs
//! between the runtime and its blocking pool cost more than the SIP work
//! itself. Tokio tasks keep the least-cost routing tables loaded, share
//! registrations through Redis, and serve TLS; SIGHUP reloads the dialplan.

use crate::b2bua::config::SipConfig;
use crate::b2bua::journal::CallSnapshot;
use crate::b2bua::{ids::Ids, lcr, B2bua, Media, Transport};
use crate::hep::SipTap;
use crate::http::meters::{Direction, SipMeters};
use crate::ivr::config::IvrConfig;
use crate::ngserver::{wait_durable, NgServer};
use crate::sipinbox::{inbox, Inbound, Inbox, Mailbox, UdpIn, BURST};
use crate::siptransport::{
    accept_tcp, accept_tls, tls_client_config, tls_config, Connections, Outbound,
};
use crate::sipws::accept_ws;
use crate::sync::lock;
use crate::time::Now;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The longest the thread sleeps, so it notices `stop`.
const NAP: Duration = Duration::from_millis(50);

/// Binds `cfg.listen`, loads the LCR tables, and serves on a thread of its
/// own until `stop` is set. Returns when the listener is up (or not).
pub async fn run(
    ng: Arc<NgServer>,
    cfg: SipConfig,
    ivr: IvrConfig,
    restored: Vec<CallSnapshot>,
    config_path: Option<PathBuf>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let Some(listen) = cfg.listen else {
        return Ok(());
    };
    let bound = UdpSocket::bind(listen).and_then(|u| Ok((u, TcpListener::bind(listen)?)));
    let (sock, tcp) = match bound {
        Ok(s) => s,
        Err(e) => {
            stop.store(true, Ordering::Relaxed); // the node does not run half-configured
            return Err(e);
        }
    };
    let listeners = match StreamListeners::bind(&cfg).await {
        Ok(l) => l,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
    };
    let local = SocketAddr::new(
        cfg.advertise.unwrap_or(listen.ip()),
        sock.local_addr()?.port(),
    );
    tracing::info!(%listen, %local, routes = cfg.routes.len(), "SIP B2BUA listening (UDP and TCP)");
    let lcr_cfg = cfg.lcr.clone();
    let uses_ivr = cfg.routes.iter().any(|r| {
        r.target
            .as_deref()
            .is_some_and(|t| t.starts_with(crate::b2bua::config::IVR))
    });
    let tls_ca = cfg.tls_ca.clone();
    let cfg_redis = cfg.registrar_redis.clone();
    let b2b = Arc::new(Mutex::new(B2bua::new(
        cfg,
        local,
        Now::real(),
        Ids::from_os(),
    )));
    restore(&ng, &b2b, restored);
    // The IVR's menus are ready before the first INVITE is read.
    let ivr_reloader = match uses_ivr {
        true => start_ivr(&ivr, &b2b).await,
        false => None,
    };
    let reloader = match &lcr_cfg.url {
        Some(url) => {
            let db = match lcr::connect(url).await {
                Ok(db) => {
                    // Routes are ready before the first INVITE is read.
                    match lcr::load(&db).await {
                        Ok(t) => lock(&b2b).set_lcr(Now::real(), t),
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
    ng.observed.sip_listening(b2b.clone());
    let shared =
        cfg_redis.map(|url| tokio::spawn(crate::regshare::run(url, b2b.clone(), stop.clone())));
    let (tx, mailbox) = inbox()?;
    let udp = UdpIn::new(sock);
    let conns: Connections = Arc::default();
    let accepting = listeners.spawn(&tx, &conns);
    let tls_out = match tls_client_config(tls_ca.as_deref()) {
        Ok(c) => Some((
            tokio::runtime::Handle::current(),
            tokio_rustls::TlsConnector::from(Arc::new(c)),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "no TLS client: targets asking for TLS cannot be called");
            None
        }
    };
    let out = Outbound {
        conns,
        tx,
        tls: tls_out,
    };
    let (stop2, b2b_main) = (stop.clone(), b2b.clone());
    let hep = ng.hep.clone().map(|tap| SipTap { tap, local });
    let serving = std::thread::Builder::new()
        .name("tg-sip".into())
        .spawn(move || serve(udp, tcp, mailbox, out, &ng, &b2b, &stop2, hep))?;
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if hup.swap(false, Ordering::Relaxed) {
            reload_dialplan(config_path.as_deref(), &b2b_main);
        }
    }
    for t in [reloader, shared, ivr_reloader]
        .into_iter()
        .flatten()
        .chain(accepting)
    {
        t.abort();
    }
    let _ = tokio::task::spawn_blocking(move || serving.join()).await;
    Ok(())
}

/// Gives the B2BUA its IVR engine, and keeps its menus read anew every
/// `reload_secs`; without the menus, `ivr:` routes get 503.
async fn start_ivr(cfg: &IvrConfig, b2b: &Arc<Mutex<B2bua>>) -> Option<JoinHandle<()>> {
    let (engine, store) = match crate::ivr::store::load_engine(cfg).await {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!(error = %e, "IVR menus unavailable; `ivr:` routes get 503");
            return None;
        }
    };
    lock(b2b).set_ivr(engine);
    let every = Duration::from_secs(cfg.reload_secs);
    let b2b = b2b.clone();
    let apply = move |menus| lock(&b2b).set_ivr_menus(menus);
    (cfg.reload_secs > 0).then(|| tokio::spawn(crate::ivr::store::reload(store, every, apply)))
}

/// How often the SIP counters are logged.
const REPORT_EVERY: Duration = Duration::from_secs(60);

fn report(c: &crate::b2bua::Counters) {
    tracing::info!(
        received = c.received,
        malformed = c.malformed,
        bad_requests = c.bad_requests,
        overload = c.overload,
        calls = c.calls,
        answered = c.answered,
        "SIP counters"
    );
}

/// SIGHUP: the dialplan is read again from the config file (validated
/// whole first; a bad file leaves the running dialplan as it was).
fn reload_dialplan(path: Option<&Path>, b2b: &Mutex<B2bua>) {
    let Some(path) = path else {
        tracing::warn!(
            "SIGHUP: the node runs on built-in defaults; there is no dialplan file to read"
        );
        return;
    };
    match crate::config::Config::load(path) {
        Ok(c) => {
            lock(b2b).set_routes(&c.sip.routes, &c.sip.orgs);
            tracing::info!(routes = c.sip.routes.len(), file = %path.display(), "dialplan reloaded");
        }
        Err(e) => tracing::error!(error = %e, "dialplan not reloaded; the running one stays"),
    }
}

#[allow(clippy::too_many_arguments)]
fn serve(
    udp: UdpIn,
    tcp: TcpListener,
    mailbox: Mailbox,
    outbound: Outbound,
    ng: &NgServer,
    b2b: &Mutex<B2bua>,
    stop: &Arc<AtomicBool>,
    hep: Option<SipTap>,
) {
    let (tx, conns) = (outbound.tx.clone(), outbound.conns.clone());
    let _ = std::thread::Builder::new()
        .name("tg-sip-accept".into())
        .spawn(move || accept_tcp(tcp, tx, conns));
    let mut udp = udp;
    let mut burst: Vec<Inbound> = Vec::with_capacity(2 * BURST);
    let mut reported = Instant::now();
    let mut load = ThreadLoad::start();
    while !stop.load(Ordering::Relaxed) {
        if reported.elapsed() >= REPORT_EVERY {
            reported = Instant::now();
            report(&lock(b2b).counters);
        }
        if let Some(busy) = load.sample(LOAD_EVERY) {
            let mut b = lock(b2b);
            b.guard.set_load(busy);
            b.guard.set_spool_holding(ng.spool_holding());
        }
        if !udp.take(&mailbox, &mut burst) {
            return;
        }
        if burst.is_empty() {
            let wait = lock(b2b)
                .poll_timeout()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(NAP)
                .clamp(Duration::from_millis(1), NAP);
            udp.wait(&mailbox, wait);
            if !udp.take(&mailbox, &mut burst) {
                return;
            }
        }
        step(&mut burst, ng, b2b, udp.socket(), &outbound, hep.as_ref());
    }
    report(&lock(b2b).counters);
}

/// A message to send: how, to whom, what.
type Transmit = (Transport, SocketAddr, Vec<u8>);

/// Hands `burst` to the B2BUA one message at a time (the handler lock NG
/// also takes is held per message, so an NG request waits for one SIP
/// message, not a burst), then runs its due timers. What an input produced
/// leaves at once until an input produces a CDR: from then on the step's
/// messages (a BYE's 200 and what follows it) wait until its CDRs are
/// durable, so messages still leave in the order produced.
fn step(
    burst: &mut Vec<Inbound>,
    ng: &NgServer,
    b2b: &Mutex<B2bua>,
    sock: &UdpSocket,
    outbound: &Outbound,
    hep: Option<&SipTap>,
) {
    let (mut held, mut queued) = (Vec::new(), Vec::new());
    // A banned source's messages go before anything is spent on them: one
    // lock for the burst, no parse, no counting, no export.
    {
        let mut b = lock(b2b);
        let now = Instant::now();
        burst.retain(|m| !b.guard.banned(now, m.from().ip()));
    }
    let inputs = burst.drain(..).map(Some).chain([None]);
    let meters = &ng.observed.sip;
    for input in inputs {
        if let Some(Inbound::Datagram(_, m) | Inbound::Stream(_, _, m)) = &input {
            meters.count(Direction::Received, m);
        }
        let (out, records) = ng.with_handler_here(|h| {
            let mut b = lock(b2b);
            let mut media = Media {
                sessions: &mut h.sessions,
                plane: h.plane.as_mut(),
            };
            let now = Now::real();
            match &input {
                Some(Inbound::Datagram(from, bytes)) => {
                    b.on_datagram(now, *from, bytes, &mut media)
                }
                Some(Inbound::Stream(from, transport, bytes)) => {
                    b.on_stream_message(now, *transport, *from, bytes, &mut media)
                }
                None => b.handle_timeout(now, &mut media),
            }
            let out: Vec<Transmit> = std::iter::from_fn(|| b.poll_transmit()).collect();
            if let Some(j) = &ng.journal {
                j.hold(crate::journal::SIP, b.take_journal(now));
            }
            if let Some(hep) = hep {
                hep.step(&b, input.as_ref(), &out);
            }
            (out, b.take_records())
        });
        // Messages leave in the order produced: once one waits for a CDR,
        // every later one of the step waits behind it.
        if !held.is_empty() || records.iter().any(|(r, _)| r.is_cdr()) {
            held.extend(out);
        } else {
            send(sock, outbound, meters, out);
        }
        queued.extend(records);
    }
    wait_durable(queued);
    ng.flush_journal();
    send(sock, outbound, meters, held);
}

fn send(sock: &UdpSocket, outbound: &Outbound, meters: &SipMeters, out: Vec<Transmit>) {
    for (transport, to, bytes) in out {
        meters.count(Direction::Sent, &bytes);
        match transport {
            Transport::Udp => {
                if let Err(e) = sock.send_to(&bytes, to) {
                    tracing::debug!(%to, error = %e, "SIP send failed");
                }
            }
            stream => outbound.send(to, stream, &bytes),
        }
    }
}

/// The listeners of the tokio-served stream transports: TLS, WebSocket
/// and secure WebSocket, each bound only when configured.
struct StreamListeners {
    tls: Option<(tokio::net::TcpListener, rustls::ServerConfig)>,
    ws: Option<tokio::net::TcpListener>,
    wss: Option<(tokio::net::TcpListener, rustls::ServerConfig)>,
}

impl StreamListeners {
    /// Binds what `cfg` asks for; an error names the key whose listener or
    /// certificate failed (the node does not run half-configured).
    async fn bind(cfg: &SipConfig) -> std::io::Result<StreamListeners> {
        let secure = |key: &str| {
            let (cert, key_file) = (cfg.tls_cert.as_deref(), cfg.tls_key.as_deref());
            match (cert, key_file) {
                (Some(c), Some(k)) => tls_config(c, k).map_err(std::io::Error::other),
                _ => Err(std::io::Error::other(format!(
                    "sip.{key}: needs sip.tls_cert and sip.tls_key"
                ))),
            }
        };
        let tls = match cfg.tls_listen {
            Some(at) => Some((listen_on(at, "tls_listen").await?, secure("tls_listen")?)),
            None => None,
        };
        let ws = match cfg.ws_listen {
            Some(at) => Some(listen_on(at, "ws_listen").await?),
            None => None,
        };
        let wss = match cfg.wss_listen {
            Some(at) => Some((listen_on(at, "wss_listen").await?, secure("wss_listen")?)),
            None => None,
        };
        Ok(StreamListeners { tls, ws, wss })
    }

    /// Starts accepting on each; the tasks to stop at shutdown.
    fn spawn(self, tx: &Inbox, conns: &Connections) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some((l, c)) = self.tls {
            tasks.push(tokio::spawn(accept_tls(l, c, tx.clone(), conns.clone())));
        }
        if let Some(l) = self.ws {
            tasks.push(tokio::spawn(accept_ws(l, None, tx.clone(), conns.clone())));
        }
        if let Some((l, c)) = self.wss {
            tasks.push(tokio::spawn(accept_ws(
                l,
                Some(c),
                tx.clone(),
                conns.clone(),
            )));
        }
        tasks
    }
}

/// A TCP listener at `at` for the transport configured by `sip.KEY`.
async fn listen_on(at: SocketAddr, key: &str) -> std::io::Result<tokio::net::TcpListener> {
    let l = tokio::net::TcpListener::bind(at)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("sip.{key} {at}: {e}")))?;
    tracing::info!(listen = %at, key, "SIP stream listener up");
    Ok(l)
}

/// Loads the LCR tables every `every_secs` (logging the number of gateways
/// when it changes), and writes gateway health back; reconnects when the
/// database was unavailable.
async fn lcr_reloader(
    mut db: Option<lcr::LcrDb>,
    url: String,
    every_secs: u64,
    b2b: Arc<Mutex<B2bua>>,
) {
    let mut gateways = None;
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
                Ok(t) => {
                    let n = t.all_gateways().count();
                    if gateways.replace(n) != Some(n) {
                        tracing::info!(gateways = n, "LCR tables reloaded");
                    }
                    lock(&b2b).set_lcr(Now::real(), t)
                }
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

/// Gives the B2BUA back the answered calls of the journal (at start, or
/// another node's on a failover takeover); returns how many failed.
pub(crate) fn restore(ng: &NgServer, b2b: &Mutex<B2bua>, calls: Vec<CallSnapshot>) -> usize {
    if calls.is_empty() {
        return 0;
    }
    let (n, mut failed) = (calls.len(), 0);
    ng.with_handler_here(|h| {
        let mut b = lock(b2b);
        let media = Media {
            sessions: &mut h.sessions,
            plane: h.plane.as_mut(),
        };
        for c in calls {
            if let Err(e) = b.restore(Now::real(), c, &media) {
                failed += 1;
                tracing::error!(error = %e, "journaled call not restored");
            }
        }
        ((), Vec::new())
    });
    tracing::info!(calls = n, failed, "B2BUA calls restored from the journal");
    failed
}

/// How often the SIP thread's busy share is handed to the B2BUA's guard.
const LOAD_EVERY: Duration = Duration::from_millis(500);

/// The calling thread's CPU time against the wall clock: its busy share.
struct ThreadLoad {
    at: Instant,
    cpu: Duration,
}

impl ThreadLoad {
    fn start() -> ThreadLoad {
        ThreadLoad {
            at: Instant::now(),
            cpu: thread_cpu(),
        }
    }

    /// The busy share since the last sample, once `every` has passed.
    fn sample(&mut self, every: Duration) -> Option<f64> {
        let wall = self.at.elapsed();
        if wall < every {
            return None;
        }
        let cpu = thread_cpu();
        let busy = cpu.saturating_sub(self.cpu).as_secs_f64() / wall.as_secs_f64();
        (self.at, self.cpu) = (Instant::now(), cpu);
        Some(busy.min(1.0))
    }
}

/// CPU time the calling thread has used (std has no per-thread clock).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec into a live local.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
