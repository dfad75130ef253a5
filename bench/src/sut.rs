//! Systems under test, started in the relay namespace on the relay cores
//! and driven only through NG, so each is measured the same way:
//! Tollgate (`tollgate run`, XDP or socket backend) and rtpengine
//! (userspace forwarding, one media thread).

use crate::cpu::{self, Counted};
use crate::topology::Topology;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Xdp,
    /// The XDP backend with a null stage on every flow: media through the
    /// AF_XDP pipeline workers.
    Afxdp,
    /// The DPDK backend on net_af_packet over the relay's veths, which the
    /// kernel gives up (no addresses): `tollgate` built with `--features dpdk`.
    Dpdk,
    Socket,
    Rtpengine,
    /// Redirect-only XDP, no relay work: the host's forwarding floor.
    Ceiling,
}

impl System {
    pub fn parse(s: &str) -> Result<System, String> {
        match s {
            "xdp" => Ok(System::Xdp),
            "afxdp" => Ok(System::Afxdp),
            "dpdk" => Ok(System::Dpdk),
            "socket" => Ok(System::Socket),
            "rtpengine" => Ok(System::Rtpengine),
            "ceiling" => Ok(System::Ceiling),
            _ => Err(format!(
                "unknown system {s:?} (xdp, afxdp, dpdk, socket, rtpengine, ceiling)"
            )),
        }
    }

    /// Whether it runs Tollgate's XDP program (and needs a bpffs).
    pub fn uses_xdp(self) -> bool {
        matches!(self, System::Xdp | System::Afxdp)
    }

    pub fn name(self) -> &'static str {
        match self {
            System::Xdp => "tollgate-xdp",
            System::Afxdp => "tollgate-afxdp",
            System::Dpdk => "tollgate-dpdk",
            System::Socket => "tollgate-socket",
            System::Rtpengine => "rtpengine",
            System::Ceiling => "xdp-ceiling",
        }
    }
}

/// NG address of the system under test, on the relay namespace's loopback.
pub const NG: &str = "127.0.0.1:22222";
/// Relay port range given to every system: 20000 RTP/RTCP pairs per side.
pub const PORTS: (u16, u16) = (20000, 60000);
/// The most calls that range holds.
pub const MAX_CALLS: usize = (PORTS.1 - PORTS.0) as usize / 2;

pub struct Sut {
    pub system: System,
    child: Child,
    /// Its processes and the relay interfaces' NAPI threads.
    pub counted: Counted,
    pub log: PathBuf,
    detach: Option<PathBuf>,
}

impl Sut {
    /// Starts `system` in `topo`'s relay namespace pinned to `cores`.
    pub fn start(
        system: System,
        topo: &Topology,
        cores: &[usize],
        dir: &Path,
        bpffs: Option<&Path>,
    ) -> anyhow::Result<Sut> {
        let log = dir.join(format!("{}.log", system.name()));
        let cores_list = cores
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &topo.relay, "taskset", "-c", &cores_list]);
        let mut detach = None;
        match system {
            System::Ceiling => {
                anyhow::bail!("the ceiling is a program, not a process: see crate::ceiling")
            }
            System::Xdp | System::Afxdp | System::Dpdk | System::Socket => {
                let cfg = dir.join(format!("{}.toml", system.name()));
                let ctl = dir.join(format!("{}.sock", system.name()));
                let mut text = format!(
                    "[dataplane]\nbackend = \"{}\"\ncores = [{cores_list}]\ncontrol_socket = \"{}\"\nidle_timeout_secs = 3600\n",
                    match system {
                        System::Dpdk => "dpdk",
                        s if s.uses_xdp() => "xdp",
                        _ => "socket",
                    },
                    ctl.display()
                );
                if system.uses_xdp() {
                    let pin = bpffs.ok_or_else(|| anyhow::anyhow!("XDP needs a bpffs"))?;
                    text += &format!(
                        "[dataplane.xdp]\ninterfaces = [\"{}\", \"{}\"]\npin_dir = \"{}\"\n",
                        topo.ra,
                        topo.rb,
                        pin.display()
                    );
                    detach = Some(cfg.clone());
                }
                if system == System::Dpdk {
                    topo.give_relay_links_away();
                    text += &crate::topology::dpdk_section(&topo.ra, &topo.rb, cores.len());
                }
                text += "[media]\ntimeout_secs = 3600\ndelete_delay_secs = 0\n";
                if system == System::Afxdp {
                    text += "stages = [{ kind = \"null\" }]\n";
                }
                text += &format!(
                    "[cdr]\nspool_dir = \"{0}/spool\"\nsinks = [{{ kind = \"sqlite\", url = \"sqlite://{0}/cdr.sqlite\" }}]\n",
                    dir.display()
                );
                std::fs::write(&cfg, text)?;
                cmd.arg(std::env::current_exe()?)
                    .args(["run", "--config"])
                    .arg(&cfg)
                    .args([
                        "--interface",
                        "caller/10.201.1.1",
                        "--interface",
                        "callee/10.201.2.1",
                        "--listen-ng",
                        NG,
                    ])
                    .args([
                        "--port-min",
                        &PORTS.0.to_string(),
                        "--port-max",
                        &PORTS.1.to_string(),
                    ])
                    .env("TOLLGATE_LOG", "warn");
            }
            System::Rtpengine => {
                cmd.args([
                    "rtpengine",
                    "--config-file=none",
                    "--table=-1",
                    "--foreground",
                    "--log-stderr",
                    "--log-level=4",
                ])
                .args([
                    "--interface=caller/10.201.1.1",
                    "--interface=callee/10.201.2.1",
                ])
                .arg(format!("--listen-ng={NG}"))
                .arg(format!("--port-min={}", PORTS.0))
                .arg(format!("--port-max={}", PORTS.1))
                .args(["--num-threads=1", "--timeout=3600", "--delete-delay=0"])
                .arg(format!("--pidfile={}/rtpengine.pid", dir.display()));
            }
        }
        let f = std::fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()?;
        let mut sut = Sut {
            system,
            child,
            counted: Counted::default(),
            log,
            detach,
        };
        sut.wait_ready(topo)?;
        let mut processes = Vec::new();
        for p in sut.processes() {
            cpu::pin_process(p, cores);
            // Read back after pinning, so the report shows where each may run.
            processes.push(
                cpu::Task::read(p).ok_or_else(|| anyhow::anyhow!("relay process {p} vanished"))?,
            );
        }
        sut.counted = Counted {
            processes,
            napi_threads: cpu::pin_napi_threads(&[&topo.ra, &topo.rb], cores)?,
        };
        Ok(sut)
    }

    /// The processes that do the relaying, now: `ip netns exec` and taskset
    /// exec in place, so the child's pid is the relay's, and `tollgate run`'s
    /// data plane is its child process.
    pub fn processes(&self) -> Vec<u32> {
        let pid = self.child.id();
        let mut out = vec![pid];
        if self.system != System::Rtpengine {
            if let Ok(kids) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
                out.extend(
                    kids.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
        out
    }

    fn wait_ready(&mut self, topo: &Topology) -> anyhow::Result<()> {
        let ng: SocketAddr = NG.parse().expect("literal");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait()? {
                anyhow::bail!(
                    "{} exited during start ({st}):\n{}",
                    self.system.name(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let up = Topology::run_in(&topo.relay, move || {
                let mut c = tollgate_ng::client::NgClient::new(ng).ok()?;
                c.timeout = Duration::from_millis(200);
                c.attempts = 1;
                c.command("ping", []).ok()
            });
            if up.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!(
            "{} did not answer NG within 20 s:\n{}",
            self.system.name(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

/// Stops a child process: SIGTERM, up to `grace` to exit, then SIGKILL.
pub fn terminate(child: &mut Child, grace: Duration) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let end = Instant::now() + grace;
    while child.try_wait().ok().flatten().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Sut {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
        if let Some(cfg) = &self.detach {
            let _ = Command::new(std::env::current_exe().unwrap_or_default())
                .args(["dataplane", "--detach", "--config"])
                .arg(cfg)
                .stdout(Stdio::null())
                .status();
        }
    }
}
