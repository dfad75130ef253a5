//! Real data-tier servers for the CDR tests: PostgreSQL, MariaDB, Redis and
//! RabbitMQ, started on loopback by `scripts/data/start-*.sh` (which install
//! the Debian package when missing and reuse a healthy running server), once
//! per test process. Tests keep apart by their own call ids, so they can
//! share the servers.

use std::collections::HashMap;
use std::path::PathBuf;
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
