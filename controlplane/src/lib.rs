//! Tollgate's control plane and node: the sans-IO cores (B2BUA, media
//! sessions, NG handler, IVR) and their I/O adapters (SIP transports, NG server,
//! data-plane link, databases, HTTP), the supervisor of `tollgate run`, and what
//! `tollgate ctl`, `cdr` and `tune` do. The binary (`main.rs`) is only the
//! command line over it; tests drive these modules directly.

pub mod archive;
pub mod b2bua;
pub mod cdrs;
pub mod config;
pub mod ctl;
pub mod failover;
pub mod hep;
pub mod http;
pub mod ivr;
pub mod journal;
pub mod media;
pub mod ng;
pub mod ngserver;
pub mod plane;
pub mod recording;
pub mod regshare;
pub mod sipinbox;
pub mod sipserver;
pub mod siptransport;
pub mod sipws;
pub mod supervisor;
mod sync;
pub mod time;
pub mod tune;

use anyhow::{Context, Result};
use config::Config;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tollgate_cdr::spool::Spool;

/// Runs the control plane until `stop` is set; `config_path` is read again
/// on SIGHUP for the dialplan.
pub fn controlplane(
    cfg: Config,
    config_path: Option<PathBuf>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let (spool, repairs) =
        Spool::open(cfg.cdr.spool(), &cfg.cdr.sink_names()).context("opening the CDR spool")?;
    for r in repairs {
        eprintln!("tollgate: CDR spool repaired: {r}");
    }
    let spool = Arc::new(spool);
    let mut link = plane::DataplaneLink::new(cfg.dataplane.control_socket.clone());
    let mut sessions = media::Sessions::new(cfg.media.clone())
        .with_recordings(recording::config::RecordingConfig::of(&cfg.archive));
    let (journal, sip_calls, standby) = match cfg.journal.disabled {
        true => (None, Vec::new(), None),
        false => {
            let path = cfg.journal.path(&cfg.cdr.spool_dir);
            let (j, entries, note) = journal::Journal::open(&path)?;
            if let Some(note) = note {
                tracing::warn!(journal = %path.display(), "call journal repaired: {note}");
            }
            let j = Arc::new(journal::Shared::new(j));
            let (standby, entries) = match &cfg.failover {
                Some(f) => {
                    let (s, e) = failover::prepare(f, &j, entries);
                    (Some(s), e)
                }
                None => (None, entries),
            };
            let ended = match entries.is_empty() {
                true => Default::default(),
                false => tollgate_cdr::spool::recent::ended_calls(&cfg.cdr.spool(), 2)
                    .context("reading the newest CDRs back")?,
            };
            let calls = journal::restore_media(&j, entries, &ended, &mut sessions, &mut link);
            (Some(j), calls, standby)
        }
    };
    let handler = ng::NgHandler::new(sessions, Box::new(link), time::Now::real());
    let hep = hep::Tap::start(&cfg.hep).context("starting the HEP exporter")?;
    let server = ngserver::NgServer::new(handler, spool.clone(), hep, journal);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("tg-control")
        .build()
        .context("starting the control plane runtime")?;
    rt.block_on(async {
        let (archive, archive_status) = match cfg.archive.enabled {
            true => archive::start(&cfg.archive, &cfg.cdr, stop.clone())?.unzip(),
            false => (None, None),
        };
        let http = match cfg.http.enabled {
            true => Some(
                http::start(
                    &cfg.http,
                    server.clone(),
                    spool.clone(),
                    cfg.dataplane.control_socket.clone(),
                    cfg.sip.listen.is_some(),
                    archive_status,
                    stop.clone(),
                )
                .await
                .with_context(|| format!("HTTP listener on {} ([http] listen)", cfg.http.listen))?,
            ),
            false => {
                // Nobody reads the samples, but HEP exports their RTCP.
                if server.hep.as_ref().is_some_and(|t| t.rtcp) {
                    let samples = Arc::default();
                    let socket = cfg.dataplane.control_socket.clone();
                    http::sampler::spawn(socket, server.clone(), samples, stop.clone())
                        .context("starting the RTCP sampler for HEP")?;
                }
                None
            }
        };
        let sinks = tollgate_cdr::sink::spawn_all(&spool, &cfg.cdr);
        let failover = standby.map(|s| tokio::spawn(s.run(server.clone(), stop.clone())));
        let sip = tokio::spawn(sipserver::run(
            server.clone(),
            cfg.sip.clone(),
            cfg.ivr.clone(),
            sip_calls,
            config_path,
            stop.clone(),
        ));
        let served = ngserver::run(server, cfg.ng.clone(), stop)
            .await
            .with_context(|| format!("NG listener on {}", cfg.ng.listen));
        let sip = match sip.await {
            Ok(r) => r.with_context(|| format!("SIP listener on {:?}", cfg.sip.listen)),
            Err(e) => Err(anyhow::anyhow!("SIP listener: {e}")),
        };
        for s in sinks.into_iter().chain(failover) {
            s.abort();
        }
        if let Some(a) = archive {
            let _ = a.await;
        }
        if let Some(h) = http {
            let _ = h.await;
        }
        served.and(sip)
    })
}
