//! `tollgate run`: one node on one host. Starts the data plane as a child
//! process (`tollgate dataplane`), waits until it answers, runs the control
//! plane (NG server, media sessions) in this process, and restarts the data
//! plane if it dies (the control plane then re-installs its flows; with XDP
//! forwarding never stopped). On SIGINT/SIGTERM both stop.
//!
//! The child runs on this process's effective configuration, not on the
//! file alone: its `[dataplane]` and `[media]` sections, command-line
//! overrides applied, are written next to the control socket
//! (`<socket>.effective.toml`, e.g. `/run/tollgate/dataplane.effective.toml`)
//! and passed as its `--config`. So `--interface NAME/ADDRESS` reaches the
//! data plane's `auto` backend choice, and a restarted child gets the same
//! settings as the first.

use crate::config::Config;
use anyhow::{bail, Context, Result};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_dataplane::client::ControlClient;
use tollgate_dataplane::control::Request;

/// Writes the data-plane child's config (see the module doc); returns its path.
fn write_dataplane_config(cfg: &Config) -> Result<PathBuf> {
    let path = cfg
        .dataplane
        .control_socket
        .with_extension("effective.toml");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {} for the data plane's config", dir.display()))?;
    }
    let text = cfg
        .dataplane_toml()
        .context("writing the data plane's [dataplane] and [media] sections as TOML")?;
    std::fs::write(&path, text)
        .with_context(|| format!("writing the data plane's config {}", path.display()))?;
    Ok(path)
}

fn spawn_dataplane(config: &Path) -> Result<Child> {
    let exe = std::env::current_exe().context("locating the tollgate binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("dataplane").arg("--config").arg(config);
    // The data plane stops (XDP forwarding stays in place) when this process
    // dies, say after a panic: the restarted node starts its own instead of
    // finding an orphan holding the relay ports and the control socket.
    // (The signal follows the spawning thread: the main thread, or the
    // watcher, which lives as long as the node.)
    let parent = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe and touch only the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other(
                    "the node exited while starting its data plane",
                ));
            }
            Ok(())
        });
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
    let dp_config = write_dataplane_config(&cfg)?;
    let mut child = spawn_dataplane(&dp_config)?;
    wait_ready(&mut child, &socket)?;
    let child = Arc::new(Mutex::new(child));
    let watcher = {
        let (child, stop, dp_config) = (child.clone(), stop.clone(), dp_config.clone());
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
                    match spawn_dataplane(&dp_config) {
                        Ok(n) => *c = n,
                        Err(e) => tracing::error!(error = %e, "could not restart the data plane"),
                    }
                }
            }
        })
    };
    let result = crate::controlplane(cfg, config_path, stop.clone());
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let mut c = child.lock().expect("child");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let _ = c.wait();
    let _ = std::fs::remove_file(&dp_config);
    result
}
