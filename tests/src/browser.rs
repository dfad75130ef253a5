//! Headless Chromium (Debian's `chromium`) driven over the DevTools
//! protocol on a pipe (`--remote-debugging-pipe`: JSON messages ended by
//! NUL on fds 3 and 4), so a test can load a page, wait for what its
//! script draws, read the DOM, collect console messages and uncaught
//! exceptions, and take a screenshot. A pipe rather than `--dump-dom`,
//! which dumps before a page fed by a live event stream has drawn
//! anything. Every wait is bounded.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest one protocol call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Browser {
    child: Child,
    to: std::fs::File,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    /// Console messages and uncaught exceptions the page produced.
    pub console: Vec<String>,
}

/// A pipe whose ends are closed on exec: (read, write).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Starts Chromium with its profile and log in `dir`.
    pub fn launch(dir: &Path) -> Browser {
        crate::peers::require("chromium");
        let (cmd_r, cmd_w) = pipe();
        let (resp_r, resp_w) = pipe();
        let (in_fd, out_fd) = (cmd_r.as_raw_fd(), resp_w.as_raw_fd());
        let log = std::fs::File::create(dir.join("chromium.log")).expect("log");
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args(["--remote-debugging-pipe", "--disable-extensions"])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium").display()
        ))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
        // SAFETY: dup2 and fcntl are async-signal-safe and touch only the child.
        unsafe {
            cmd.pre_exec(move || {
                for (fd, at) in [(in_fd, 3), (out_fd, 4)] {
                    if fd == at {
                        libc::fcntl(fd, libc::F_SETFD, 0);
                    } else if libc::dup2(fd, at) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .expect("starting chromium (scripts/setup.sh installs it)");
        drop((cmd_r, resp_w));
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(std::fs::File::from(resp_r));
            let mut buf = Vec::new();
            while r.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                buf.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                buf.clear();
            }
        });
        Browser {
            child,
            to: std::fs::File::from(cmd_w),
            from,
            next_id: 0,
            session: None,
            console: Vec::new(),
        }
    }

    /// One protocol call (on the attached page, once there is one); its
    /// `result`, or a panic naming the method and the error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("chromium did not answer {method}: {e}"));
            if m["id"].as_u64() == Some(id) {
                assert!(m.get("error").is_none(), "{method}: {}", m["error"]);
                return m["result"].clone();
            }
            self.note(&m);
        }
    }

    /// Keeps what an event says went wrong on the page.
    fn note(&mut self, m: &Value) {
        let p = &m["params"];
        match m["method"].as_str() {
            Some("Runtime.consoleAPICalled") => {
                let args: Vec<String> = p["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| a["value"].to_string())
                    .collect();
                self.console
                    .push(format!("console.{}: {}", p["type"], args.join(" ")));
            }
            Some("Runtime.exceptionThrown") => {
                self.console
                    .push(format!("exception: {}", p["exceptionDetails"]));
            }
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                self.console.push(format!("log: {}", p["entry"]["text"]));
            }
            _ => {}
        }
    }

    /// Opens `url` in a new page of `width` x `height` CSS pixels (a phone
    /// with `mobile`), watching its console.
    pub fn open(&mut self, url: &str, width: u32, height: u32, mobile: bool) {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        self.session = attached["sessionId"].as_str().map(str::to_string);
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            self.call(domain, json!({}));
        }
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 2, "mobile": mobile}),
        );
        self.call("Page.navigate", json!({"url": url}));
    }

    /// The value of a JavaScript expression on the page.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// Evaluates `expression` every 200 ms until it is true, at most `within`.
    pub fn wait_for(&mut self, expression: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.eval(expression) == Value::Bool(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// A PNG of the page as shown, written to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.session = None;
        let close = serde_json::to_vec(&json!({"id": 0, "method": "Browser.close"}));
        if let Ok(mut b) = close {
            b.push(0);
            let _ = self.to.write_all(&b);
        }
        tollgate_bench::sut::terminate(&mut self.child, Duration::from_secs(3));
    }
}
