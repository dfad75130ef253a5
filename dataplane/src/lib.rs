//! Tollgate's media data plane: the process that forwards RTP/RTCP for calls.
//!
//! It owns the flows (see [`flow`]), moves their packets with a [`backend`]
//! (XDP in the driver hook, or io_uring sockets on pinned cores), and answers
//! the control socket ([`control`], [`server`]) through which the control
//! plane and `tollgate ctl` install, change, remove and inspect flows. It
//! knows nothing of SIP or databases.

pub mod backend;
pub mod client;
pub mod config;
pub mod control;
pub mod flow;
pub mod pipeline;
pub mod quality;
pub mod server;
pub mod srtp;
pub mod table;
pub mod wire;

use backend::{socket::SocketBackend, xdp::XdpBackend, Backend, BackendError};
use config::{BackendChoice, DataplaneConfig, XdpConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use table::FlowTable;

/// Why the data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    // The cause is in the message, not a `source`: a reporter printing the
    // chain would print it twice.
    #[error("{backend} backend: {cause}")]
    Backend {
        backend: &'static str,
        cause: BackendError,
    },
    #[error("control socket {path}: {cause}")]
    ControlSocket { path: String, cause: std::io::Error },
}

/// Number of cores online on this host. Not the process's affinity mask:
/// under `taskset` or a cpuset the configured cores must still be valid.
pub fn host_cores() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// Starts the backend the configuration asks for; `auto` is [`start_auto`].
pub fn start_backend(cfg: &DataplaneConfig) -> Result<Box<dyn Backend>, StartError> {
    match cfg.backend {
        BackendChoice::Xdp => start_xdp(&cfg.xdp, cfg, "dataplane.xdp.interfaces"),
        BackendChoice::Socket => start_socket(cfg),
        BackendChoice::Auto => start_auto(cfg),
        BackendChoice::Dpdk => start_dpdk(cfg),
    }
}

/// DPDK on the ports of `[dataplane.dpdk]`.
#[cfg(feature = "dpdk")]
fn start_dpdk(cfg: &DataplaneConfig) -> Result<Box<dyn Backend>, StartError> {
    backend::dpdk::DpdkBackend::start(&cfg.dpdk, &cfg.worker_cores(host_cores()))
        .map(|b| Box::new(b) as Box<dyn Backend>)
        .map_err(|cause| StartError::Backend {
            backend: "dpdk",
            cause,
        })
}

#[cfg(not(feature = "dpdk"))]
fn start_dpdk(_: &DataplaneConfig) -> Result<Box<dyn Backend>, StartError> {
    Err(StartError::Backend {
        backend: "dpdk",
        cause: BackendError::Other(
            "this build has no DPDK support: build with `--features dpdk` (needs libdpdk-dev)"
                .into(),
        ),
    })
}

/// `auto`: XDP on `dataplane.xdp.interfaces` when set, else on the devices
/// holding the media addresses (see [`backend::xdp::devices`]); the socket
/// backend when there are none (loopback-only nodes) or the kernel refuses
/// XDP, in which case whatever the attempt left attached is removed so that
/// no stale XDP program forwards beside the socket backend (state pinned by
/// an earlier run, which still forwards its calls, is left alone).
fn start_auto(cfg: &DataplaneConfig) -> Result<Box<dyn Backend>, StartError> {
    let (interfaces, from) = if cfg.xdp.interfaces.is_empty() {
        match media_devices(&cfg.media_addresses) {
            Ok(devices) => (devices, "the devices holding the media addresses"),
            Err(why) => {
                tracing::info!("backend auto: {why}; using the socket backend");
                return start_socket(cfg);
            }
        }
    } else {
        (cfg.xdp.interfaces.clone(), "dataplane.xdp.interfaces")
    };
    let xdp = XdpConfig {
        interfaces,
        ..cfg.xdp.clone()
    };
    // State pinned by an earlier run forwards its calls' media: a failed
    // attempt now must not take that away.
    let adopted = backend::xdp::has_pinned_state(&xdp);
    start_xdp(&xdp, cfg, from).or_else(|e| {
        tracing::warn!(
            devices = %xdp.interfaces.join(","),
            "backend auto: {e}; falling back to the socket backend"
        );
        if adopted {
            tracing::warn!(
                pin_dir = %xdp.pin_dir.display(),
                "XDP state pinned by an earlier run left in place (its calls keep their media); \
                 `tollgate dataplane --detach` removes it"
            );
        } else if let Err(e) = backend::xdp::detach(&xdp) {
            tracing::warn!(pin_dir = %xdp.pin_dir.display(), error = %e, "could not remove what the XDP attempt left");
        }
        start_socket(cfg)
    })
}

/// The devices for XDP from the media addresses, or why there are none.
fn media_devices(media: &[std::net::IpAddr]) -> Result<Vec<String>, String> {
    use backend::xdp::devices::{self, Selection};
    let assigned =
        devices::assigned().map_err(|e| format!("cannot list this host's addresses ({e})"))?;
    match devices::select(media, &assigned) {
        Selection::Xdp(d) => Ok(d),
        Selection::Socket(why) => Err(why),
    }
}

/// XDP on `xdp.interfaces`, which came `from` where the log says, with
/// its AF_XDP workers on the data plane's cores.
fn start_xdp(
    xdp: &XdpConfig,
    cfg: &DataplaneConfig,
    from: &str,
) -> Result<Box<dyn Backend>, StartError> {
    let b = XdpBackend::start(xdp, &cfg.worker_cores(host_cores())).map_err(|cause| {
        StartError::Backend {
            backend: "xdp",
            cause,
        }
    })?;
    tracing::info!(
        backend = "xdp",
        devices = %xdp.interfaces.join(","),
        mode = ?xdp.mode,
        "XDP attached to {from}"
    );
    Ok(Box::new(b))
}

fn start_socket(cfg: &DataplaneConfig) -> Result<Box<dyn Backend>, StartError> {
    SocketBackend::start(&cfg.socket, &cfg.worker_cores(host_cores()))
        .map(|b| Box::new(b) as Box<dyn Backend>)
        .map_err(|cause| StartError::Backend {
            backend: "socket",
            cause,
        })
}

/// The socket backend holds two sockets per flow: lift the soft limit on
/// open files to the hard one.
fn raise_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Runs the data plane until `stop` is set (the binary sets it on SIGINT or
/// SIGTERM). With XDP, forwarding continues after it returns.
pub fn run(cfg: &DataplaneConfig, stop: Arc<AtomicBool>) -> Result<(), StartError> {
    let errs = cfg.validate(host_cores());
    if !errs.is_empty() {
        return Err(StartError::Config(errs));
    }
    raise_file_limit();
    let listener =
        server::bind(&cfg.control_socket).map_err(|cause| StartError::ControlSocket {
            path: cfg.control_socket.display().to_string(),
            cause,
        })?;
    let backend = start_backend(cfg)?;
    let table = Arc::new(Mutex::new(FlowTable::new(backend, cfg.idle_timeout_secs)));
    tracing::info!(
        backend = table.lock().expect("fresh lock").backend_name(),
        control_socket = %cfg.control_socket.display(),
        "data plane ready"
    );

    // Reading every flow's counters costs two map lookups per flow; sweep
    // only as often as the timeout needs (a tenth of it, 1-10 s), so the
    // housekeeping does not add latency spikes on a busy relay core.
    let every = Duration::from_secs((cfg.idle_timeout_secs / 10).clamp(1, 10));
    let sweeper = {
        let (table, stop) = (table.clone(), stop.clone());
        std::thread::Builder::new()
            .name("tg-idle".into())
            .spawn(move || {
                let mut last = std::time::Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if last.elapsed() < every {
                        continue;
                    }
                    last = std::time::Instant::now();
                    let idle = table.lock().map(|mut t| t.sweep()).unwrap_or_default();
                    for r in idle {
                        tracing::warn!(local = %r.flow.local, idle_ms = r.idle_ms, "flow idle");
                    }
                }
            })
            .expect("spawn the idle sweeper")
    };
    server::serve(listener, table, stop, &cfg.control_uids);
    let _ = sweeper.join();
    let _ = std::fs::remove_file(&cfg.control_socket);
    tracing::info!("data plane stopped");
    Ok(())
}
