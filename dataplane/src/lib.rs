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
pub mod quality;
pub mod server;
pub mod table;
pub mod wire;

use backend::{socket::SocketBackend, xdp::XdpBackend, Backend, BackendError};
use config::{BackendChoice, DataplaneConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use table::FlowTable;

/// Why the data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    #[error("{backend} backend: {source}")]
    Backend {
        backend: &'static str,
        source: BackendError,
    },
    #[error("control socket {path}: {source}")]
    ControlSocket {
        path: String,
        source: std::io::Error,
    },
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

/// Starts the backend the configuration asks for (for `auto`: XDP when
/// interfaces are configured and it starts, else the socket backend).
pub fn start_backend(cfg: &DataplaneConfig) -> Result<Box<dyn Backend>, StartError> {
    let xdp = || XdpBackend::start(&cfg.xdp).map(|b| Box::new(b) as Box<dyn Backend>);
    let socket = || {
        SocketBackend::start(&cfg.socket, &cfg.worker_cores(host_cores()))
            .map(|b| Box::new(b) as Box<dyn Backend>)
            .map_err(|source| StartError::Backend {
                backend: "socket",
                source,
            })
    };
    match cfg.backend {
        BackendChoice::Xdp => xdp().map_err(|source| StartError::Backend { backend: "xdp", source }),
        BackendChoice::Socket => socket(),
        BackendChoice::Auto if cfg.xdp.interfaces.is_empty() => {
            tracing::info!("backend auto: no dataplane.xdp.interfaces configured, using the socket backend");
            socket()
        }
        BackendChoice::Auto => xdp().or_else(|e| {
            tracing::warn!(error = %e, "backend auto: XDP did not start, falling back to the socket backend");
            socket()
        }),
    }
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
        server::bind(&cfg.control_socket).map_err(|source| StartError::ControlSocket {
            path: cfg.control_socket.display().to_string(),
            source,
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
    server::serve(listener, table, stop);
    let _ = sweeper.join();
    let _ = std::fs::remove_file(&cfg.control_socket);
    tracing::info!("data plane stopped");
    Ok(())
}
