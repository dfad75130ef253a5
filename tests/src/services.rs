//! Real data-tier servers for the CDR tests: PostgreSQL, MariaDB, Redis and
//! RabbitMQ, started on loopback by `scripts/data/start-*.sh` (which install
//! the Debian package when missing and reuse a healthy running server), once
//! per test process. Tests keep apart by their own call ids, so they can
//! share the servers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Postgres,
    Mariadb,
    Redis,
    Rabbitmq,
}

impl Service {
    fn script(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Mariadb => "mariadb",
            Service::Redis => "redis",
            Service::Rabbitmq => "rabbitmq",
        }
    }
}

static URLS: Mutex<Option<HashMap<Service, String>>> = Mutex::new(None);

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/data")
}

fn run(script: &str) -> String {
    let path = scripts().join(script);
    let out = Command::new("bash")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} failed:\n{stdout}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The server's URL, starting it first if this process has not.
pub fn url(s: Service) -> String {
    let mut urls = URLS.lock().unwrap_or_else(|p| p.into_inner());
    let urls = urls.get_or_insert_with(HashMap::new);
    if let Some(u) = urls.get(&s) {
        return u.clone();
    }
    let out = run(&format!("start-{}.sh", s.script()));
    let url = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("READY ")?
                .split_once(" url=")
                .map(|(_, r)| r)
        })
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no READY line from start-{}.sh:\n{out}", s.script()))
        .to_string();
    urls.insert(s, url.clone());
    url
}

/// Stops the server (an outage); [`start`] brings it back on the same data.
pub fn stop(s: Service) {
    run(&format!("stop-{}.sh", s.script()));
}

pub fn start(s: Service) {
    run(&format!("start-{}.sh", s.script()));
}

/// A server of one test's own, started by the same scripts with its own
/// data root and ports: for a test that stops its servers, which must not
/// take the shared ones away from tests running beside it. Stopped and its
/// data removed on drop.
pub struct Private {
    dir: PathBuf,
    name: &'static str,
    env: Vec<(&'static str, String)>,
    url: String,
}

impl Private {
    /// `s` under `root`, on `port` (RabbitMQ also takes `port + 1` for
    /// Erlang distribution and `port + 2` for its own epmd).
    pub fn start(s: Service, root: &Path, port: u16) -> Private {
        let var = match s {
            Service::Postgres => "PG_PORT",
            Service::Mariadb => "MARIADB_PORT",
            Service::Redis => "REDIS_PORT",
            Service::Rabbitmq => "AMQP_PORT",
        };
        let mut env = vec![(var, port.to_string())];
        if s == Service::Rabbitmq {
            env.push(("AMQP_DIST_PORT", (port + 1).to_string()));
            env.push(("EPMD_PORT", (port + 2).to_string()));
        }
        Private::up(scripts(), s.script(), root, env)
    }

    /// SeaweedFS (the shared data scripts' S3) under `root`, S3 on `port`,
    /// its master, volume, filer and admin on `internal..internal + 4`
    /// (and, as SeaweedFS does, each + 10000 for gRPC).
    pub fn s3(root: &Path, port: u16, internal: u16) -> Private {
        let p = |n: u16| (internal + n).to_string();
        let env = vec![
            ("S3_PORT", port.to_string()),
            ("SEAWEED_MASTER_PORT", p(0)),
            ("SEAWEED_VOLUME_PORT", p(1)),
            ("SEAWEED_FILER_PORT", p(2)),
            ("SEAWEED_ADMIN_PORT", p(3)),
        ];
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
        Private::up(dir, "s3", root, env)
    }

    fn up(
        dir: PathBuf,
        name: &'static str,
        root: &Path,
        mut env: Vec<(&'static str, String)>,
    ) -> Private {
        std::fs::create_dir_all(root).expect("the servers' data root");
        env.push(("DATA_ROOT", root.display().to_string()));
        let mut p = Private {
            dir,
            name,
            env,
            url: String::new(),
        };
        let out = p.run("start", false).unwrap_or_else(|e| panic!("{e}"));
        p.url = out
            .lines()
            .find_map(|l| l.strip_prefix("READY "))
            .and_then(|l| {
                l.split_whitespace().find_map(|w| {
                    w.strip_prefix("url=")
                        .or_else(|| w.strip_prefix("endpoint="))
                })
            })
            .unwrap_or_else(|| panic!("no READY line from start-{name}.sh:\n{out}"))
            .to_string();
        p
    }

    /// Runs `start-NAME.sh` or `stop-NAME.sh` with this server's environment.
    fn run(&self, verb: &str, purge: bool) -> Result<String, String> {
        let path = self.dir.join(format!("{verb}-{}.sh", self.name));
        let root = self.env.iter().find(|(k, _)| *k == "DATA_ROOT");
        let out = Command::new("bash")
            .arg(&path)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PURGE", if purge { "1" } else { "0" })
            // A server's crash dump (Erlang's erl_crash.dump) lands there.
            .current_dir(root.map_or("/tmp", |(_, r)| r.as_str()))
            .output()
            .map_err(|e| format!("run {}: {e}", path.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "{} failed (scripts/setup.sh installs what it needs):\n{stdout}\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(stdout)
    }

    /// Its URL (the S3 endpoint for SeaweedFS).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An outage: the server stops; [`Private::resume`] starts it on the
    /// same data.
    pub fn stop(&self) {
        self.run("stop", false).unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn resume(&self) {
        self.run("start", false).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        if let Err(e) = self.run("stop", true) {
            eprintln!("{e}");
        }
    }
}
