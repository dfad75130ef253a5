//! The real `tollgate dataplane` process, started in a namespace with a
//! generated config, and a control-socket client to drive it.

use crate::TempDir;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
pub use tollgate_bench::topology::Bpffs;
use tollgate_dataplane::client::ControlClient;
use tollgate_dataplane::control::Request;
use tollgate_dataplane::flow::Flow;

/// Path of the `tollgate` binary: $TOLLGATE_BIN as given, else
/// `target/<profile>/tollgate` next to the test binary, refused when it is
/// missing or older than a source file it was built from. `cargo test
/// --workspace` builds it first (package `tollgate` has integration tests of
/// its own, so Cargo links its binary before any test runs); `cargo test -p
/// tollgate-tests` does not, hence the check.
pub fn tollgate_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TOLLGATE_BIN") {
        return p.into();
    }
    static CHECKED: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
            let dir = exe
                .parent()
                .and_then(Path::parent)
                .ok_or("the test binary is not in target/<profile>/deps")?;
            let bin = dir.join("tollgate");
            current(&bin)?;
            Ok(bin)
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Ok when `bin` exists and is newer than every source it is built from.
fn current(bin: &Path) -> Result<(), String> {
    let build = "run `cargo build -p tollgate`";
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified());
    let built = mtime(bin).map_err(|e| format!("{}: {e}: {build}", bin.display()))?;
    for file in sources(bin)? {
        // A listed file that is gone makes Cargo rebuild too.
        let newer = mtime(&file).map_or(true, |t| t > built);
        if newer {
            return Err(format!(
                "{} is older than {}: {build}",
                bin.display(),
                file.display()
            ));
        }
    }
    Ok(())
}

/// The crates linked into the `tollgate` binary.
const CRATES: [&str; 9] = [
    "controlplane",
    "archive",
    "dataplane",
    "ebpf",
    "ng",
    "sip",
    "cdr",
    "bench",
    "tuning",
];

/// What `bin` is built from: the dep-info file Cargo writes beside it after
/// `cargo build` (`tollgate.d`: every Rust source, included file and
/// build-script input), else (`cargo test` alone writes none there) every
/// file under the linked crates' `src/` and their manifests and build
/// scripts.
fn sources(bin: &Path) -> Result<Vec<PathBuf>, String> {
    if let Ok(text) = std::fs::read_to_string(bin.with_extension("d")) {
        let files = text.split_once(": ").map(|(_, f)| f).unwrap_or_default();
        return Ok(files.split_whitespace().map(PathBuf::from).collect());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the tests crate has no workspace above it")?;
    let mut out = Vec::new();
    for c in CRATES {
        let dir = root.join(c);
        out.extend(
            ["Cargo.toml", "build.rs"]
                .map(|f| dir.join(f))
                .into_iter()
                .filter(|f| f.exists()),
        );
        walk(&dir.join("src"), &mut out);
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

pub enum Backend {
    Socket,
    /// XDP on the relay's veths, state pinned in a bpffs the test mounts.
    Xdp,
    /// DPDK on the relay's veths through net_af_packet, without hugepages:
    /// a `tollgate` built with `--features dpdk`. The port addresses are
    /// the topology's relay addresses; each port has a queue pair per
    /// worker (as many as `dataplane.cores`, which the test's extra config sets).
    Dpdk {
        workers: usize,
    },
}

pub struct Dataplane {
    child: Option<Child>,
    pub netns: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    xdp: bool,
    _dir: TempDir,
}

impl Dataplane {
    /// Starts `tollgate dataplane` in `netns` (None: this namespace).
    pub fn start(
        netns: Option<&str>,
        backend: Backend,
        bpffs: Option<&Bpffs>,
        extra: &str,
    ) -> Self {
        let dir = TempDir::new("tgdp");
        let socket = dir.0.join("ctl.sock");
        let config = dir.0.join("tollgate.toml");
        let (name, xdp_section) = match backend {
            Backend::Socket => ("socket", String::new()),
            Backend::Dpdk { workers } => (
                "dpdk",
                tollgate_bench::topology::dpdk_section("ra", "rb", workers),
            ),
            Backend::Xdp => (
                "xdp",
                format!(
                    "[dataplane.xdp]\ninterfaces = [\"ra\", \"rb\"]\npin_dir = \"{}\"\n",
                    bpffs.expect("XDP needs a bpffs").dir.display()
                ),
            ),
        };
        let text = format!(
            "[dataplane]\nbackend = \"{name}\"\ncontrol_socket = \"{}\"\n{extra}\n{xdp_section}",
            socket.display()
        );
        std::fs::write(&config, text).expect("write config");
        let mut dp = Dataplane {
            child: None,
            netns: netns.unwrap_or("").to_string(),
            config,
            socket,
            log: dir.0.join("dataplane.log"),
            xdp: matches!(backend, Backend::Xdp),
            _dir: dir,
        };
        dp.spawn();
        dp
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = if self.netns.is_empty() {
            Command::new(tollgate_bin())
        } else {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.netns]).arg(tollgate_bin());
            c
        };
        cmd.args(["dataplane", "--config"]).arg(&self.config);
        cmd.env("TOLLGATE_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn tollgate dataplane"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = ControlClient::connect(&self.socket) {
                if c.request(&Request::Hello).is_ok() {
                    return;
                }
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "data plane exited with {st} during start:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "data plane did not answer within 20 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, then start again with the same config.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGTERM (a clean stop), then start again with the same config.
    pub fn stop_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            tollgate_bench::sut::terminate(&mut c, Duration::from_secs(5));
        }
        self.spawn();
    }

    /// The data plane's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn client(&self) -> ControlClient {
        ControlClient::connect(&self.socket).expect("connect to the control socket")
    }

    pub fn request(&self, req: Request) -> Result<Value, tollgate_dataplane::client::ClientError> {
        self.client().request(&req)
    }

    pub fn put(&self, flow: Flow) {
        let local = flow.local;
        self.request(Request::FlowPut { flow })
            .unwrap_or_else(|e| panic!("installing flow {local}: {e}"));
    }

    pub fn flow(&self, local: std::net::SocketAddr) -> Value {
        self.request(Request::FlowGet { local }).expect("flow_get")
    }

    pub fn counter(&self, name: &str) -> u64 {
        let c = self.request(Request::Counters).expect("counters");
        c[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name} in {c}"))
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            tollgate_bench::sut::terminate(&mut c, Duration::from_secs(5));
        }
        if self.xdp {
            let _ = Command::new(tollgate_bin())
                .args(["dataplane", "--detach", "--config"])
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A flow with defaults for the optional parts.
pub fn flow(local: &str, source: &str, destination: &str) -> Flow {
    Flow::relay(
        local.parse().expect("local"),
        source.parse().expect("source"),
        destination.parse().expect("destination"),
    )
}
