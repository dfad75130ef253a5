//! `tollgate run`: one node on one host. Starts the data plane as a child
//! process (`tollgate dataplane`), waits until it answers, runs the control
//! plane (NG server, media sessions) in this process, and restarts the data
//! plane if it dies (the control plane then re-installs its flows; with XDP
//! forwarding never stopped). On SIGINT/SIGTERM both stop.

use crate::config::Config;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_dataplane::client::ControlClient;
use tollgate_dataplane::control::Request;

fn spawn_dataplane(config: Option<&Path>) -> Result<Child> {
    let exe = std::env::current_exe().context("locating the tollgate binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("dataplane");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.spawn().context("starting the data plane")
}

fn wait_ready(child: &mut Child, socket: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait()? {
            bail!("the data plane exited during start ({st}); see its messages above");
        }
        if ControlClient::connect(socket)
            .and_then(|mut c| c.request(&Request::Hello))
            .is_ok()
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "the data plane did not answer on {} within 20 s",
        socket.display()
    )
}

pub fn run(cfg: Config, config_path: Option<PathBuf>, stop: Arc<AtomicBool>) -> Result<()> {
    let socket = cfg.dataplane.control_socket.clone();
    let mut child = spawn_dataplane(config_path.as_deref())?;
    let reload_from = config_path.clone();
    wait_ready(&mut child, &socket)?;
    let child = Arc::new(Mutex::new(child));
    let watcher = {
        let (child, stop) = (child.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let mut c = child.lock().expect("child");
                if let Ok(Some(st)) = c.try_wait() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tracing::error!(status = %st, "the data plane exited; restarting it");
                    std::thread::sleep(Duration::from_millis(500));
                    match spawn_dataplane(config_path.as_deref()) {
                        Ok(n) => *c = n,
                        Err(e) => tracing::error!(error = %e, "could not restart the data plane"),
                    }
                }
            }
        })
    };
    let result = crate::controlplane(cfg, reload_from, stop.clone());
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let mut c = child.lock().expect("child");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let _ = c.wait();
    result
}
