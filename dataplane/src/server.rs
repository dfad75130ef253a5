//! The control-socket server: accepts connections on the Unix socket, decodes
//! requests (see [`crate::control`]) and applies them to the flow table. One
//! thread per connection; clients are few (the control plane, `tollgate ctl`).

use crate::backend::BackendError;
use crate::control::{self, ControlError, ErrorKind, Frame, Hello, Reply, Request};
use crate::table::{FlowTable, TableError};
use std::io::{self, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long [`bind`] waits for a previous data plane to finish exiting: a
/// node restarted at once after SIGKILL (systemd's `Restart=always`) starts
/// while the killed process's sockets are still being closed.
const PREDECESSOR_EXIT: Duration = Duration::from_secs(3);

/// Binds the control socket, replacing a stale socket file left by a previous
/// process (but refusing to steal one that a live data plane still answers on
/// after [`PREDECESSOR_EXIT`]).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        let deadline = std::time::Instant::now() + PREDECESSOR_EXIT;
        while UnixStream::connect(path).is_ok() {
            if std::time::Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by another running data plane", path.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Room for a batch of requests read at once (a call's flows are a few KB).
const READ_BUFFER: usize = 64 * 1024;

/// Serves until `stop` is set: connections from root, our own user and
/// `uids`; any other peer's is closed unserved.
pub fn serve(
    listener: UnixListener,
    table: Arc<Mutex<FlowTable>>,
    stop: Arc<AtomicBool>,
    uids: &[u32],
) {
    // SAFETY: geteuid takes nothing and cannot fail.
    let own = unsafe { libc::geteuid() };
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                match peer_uid(&stream) {
                    Some(uid) if uid == 0 || uid == own || uids.contains(&uid) => {}
                    peer => {
                        tracing::warn!(uid = ?peer, "control socket connection from a user not in dataplane.control_uids; closed");
                        continue;
                    }
                }
                let table = table.clone();
                std::thread::Builder::new()
                    .name("tg-ctl-conn".into())
                    .spawn(move || connection(stream, &table))
                    .expect("spawn a control connection thread");
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The uid of the process at the other end (SO_PEERCRED; std's
/// `peer_cred` is not stable).
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes one ucred into a live local of that size.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(cred.uid)
}

/// Serves one client. Requests are read through a buffer and their replies
/// gathered until the buffer is empty: a client that sends a batch (a
/// call's flows) gets every reply in one `write`, and its batch costs the
/// data plane one `read`.
fn connection(stream: UnixStream, table: &Mutex<FlowTable>) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    let mut replies = Vec::new();
    loop {
        let reply = match control::read_frame(&mut reader, control::MAX_REQUEST) {
            Ok(Frame::Body(body)) => {
                control::decode_request(&body).and_then(|req| handle(req, table))
            }
            Ok(Frame::TooLarge(len)) => {
                let msg = format!(
                    "frame of {len} bytes exceeds the {} byte limit; closing",
                    control::MAX_REQUEST
                );
                let refusal = Err(ControlError::new(ErrorKind::BadRequest, msg));
                let _ = control::push_frame(&mut replies, &control::encode_reply(&refusal));
                let _ = writer.write_all(&replies);
                return;
            }
            Ok(Frame::Closed) | Err(_) => return,
        };
        if let Err(e) = control::push_frame(&mut replies, &control::encode_reply(&reply)) {
            tracing::warn!(error = %e, "control socket: reply not encoded; closing the connection");
            return;
        }
        if !reader.buffer().is_empty() {
            continue;
        }
        if let Err(e) = writer.write_all(&replies) {
            tracing::warn!(error = %e, bytes = replies.len(), "control socket: reply not sent; closing the connection");
            return;
        }
        replies.clear();
    }
}

fn handle(req: Request, table: &Mutex<FlowTable>) -> Result<Reply, ControlError> {
    let mut t = match table.lock() {
        Ok(t) => t,
        Err(poisoned) => poisoned.into_inner(),
    };
    let reply = match req {
        Request::Hello => Reply::Hello(Hello {
            version: control::PROTOCOL_VERSION,
            backend: t.backend_name().into(),
            instance: t.instance,
        }),
        Request::FlowPut { flow } => {
            let local = flow.local;
            t.put(flow).map_err(refusal)?;
            tracing::debug!(%local, "flow installed");
            Reply::Installed
        }
        Request::FlowDel { local } => Reply::Flow(t.remove(local).map_err(refusal)?.into()),
        Request::FlowGet { local } => Reply::Flow(t.report(local).map_err(refusal)?.into()),
        Request::FlowList => Reply::Flows(t.list()),
        Request::Idle => Reply::Flows(t.idle()),
        Request::Workers => Reply::Workers(t.workers()),
        Request::Events => Reply::Events(t.take_events()),
        Request::Counters => {
            let recorder = crate::recorder::global().counters();
            Reply::Counters(t.counters().into_iter().chain(recorder).collect())
        }
        Request::RecordingOpen { dir, recording } => {
            let r = crate::recorder::global()
                .open(&dir, recording)
                .map_err(recording_refusal)?;
            tracing::info!(recording = r.recording, dir = %dir.display(), "recording opened");
            Reply::Recording(r.into())
        }
        Request::RecordingClose { recording } => {
            let r = crate::recorder::global()
                .close(recording)
                .map_err(recording_refusal)?;
            tracing::info!(
                recording,
                packets = r.packets,
                lost = r.lost,
                "recording closed"
            );
            Reply::Recording(r.into())
        }
        Request::Recordings => Reply::Recordings(crate::recorder::global().list()),
        Request::PromptLoad { id, path } => {
            // Read and converted without the table's lock: other requests go on.
            drop(t);
            let info = crate::prompt::load(id, &path)
                .map_err(|e| ControlError::new(ErrorKind::Invalid, e.to_string()))?;
            Reply::Prompt(info)
        }
    };
    Ok(reply)
}

/// The refusal a client sees for a recorder error.
fn recording_refusal(e: crate::recorder::RecorderError) -> ControlError {
    use crate::recorder::RecorderError;
    let kind = match e {
        RecorderError::Open(_) => ErrorKind::Backend,
        RecorderError::NoSuchRecording(_) => ErrorKind::NoSuchRecording,
        RecorderError::AlreadyOpen(_) => ErrorKind::Invalid,
    };
    ControlError::new(kind, e.to_string())
}

/// The refusal a client sees for a table error, its kind from the variant.
fn refusal(e: TableError) -> ControlError {
    let kind = match &e {
        TableError::NoSuchFlow(_) => ErrorKind::NoSuchFlow,
        TableError::Backend(BackendError::Flow(_)) => ErrorKind::Invalid,
        TableError::Backend(_) => ErrorKind::Backend,
    };
    ControlError::new(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, FlowCounters};
    use crate::flow::Flow;

    /// A backend that installs anything and sees no packets.
    struct Quiet;

    impl Backend for Quiet {
        fn name(&self) -> &'static str {
            "quiet"
        }
        fn put(&mut self, _: &Flow, _: Option<&Flow>) -> Result<(), BackendError> {
            Ok(())
        }
        fn remove(&mut self, _: &Flow) -> Result<(), BackendError> {
            Ok(())
        }
        fn flow_counters(&self, _: &Flow) -> FlowCounters {
            FlowCounters::default()
        }
        fn counters(&self) -> Vec<(String, u64)> {
            Vec::new()
        }
        fn adopted(&self) -> Vec<Flow> {
            Vec::new()
        }
    }

    fn flow(local: &str, destination: &str) -> Flow {
        serde_json::from_value(serde_json::json!({
            "local": local, "source": local, "destination": destination,
        }))
        .unwrap()
    }

    #[test]
    fn requests_get_typed_replies_and_refusals_their_kind() {
        let table = Mutex::new(FlowTable::new(Box::new(Quiet), 30));
        let f = flow("127.0.0.1:30000", "127.0.0.1:4000");
        let local = f.local;
        let put = handle(Request::FlowPut { flow: f.clone() }, &table);
        assert_eq!(put, Ok(Reply::Installed));
        let Ok(Reply::Hello(hello)) = handle(Request::Hello, &table) else {
            panic!("hello");
        };
        assert_eq!((hello.version, hello.backend.as_str()), (1, "quiet"));
        let Ok(Reply::Flow(last)) = handle(Request::FlowDel { local }, &table) else {
            panic!("the final report");
        };
        assert_eq!(last.flow, f);
        let gone = handle(Request::FlowDel { local }, &table).unwrap_err();
        assert_eq!(gone.kind, ErrorKind::NoSuchFlow);
        assert_eq!(
            gone.message,
            "no flow matches local address 127.0.0.1:30000"
        );
        let mixed = flow("127.0.0.1:30002", "[::1]:4000");
        let bad = handle(Request::FlowPut { flow: mixed }, &table).unwrap_err();
        assert_eq!(bad.kind, ErrorKind::Invalid, "{bad}");
        let Ok(Reply::Counters(counters)) = handle(Request::Counters, &table) else {
            panic!("counters");
        };
        assert_eq!(counters.get("flows"), Some(&0));
        assert!(
            counters.contains_key("recorder_write_errors"),
            "{counters:?}"
        );
        let none = handle(Request::RecordingClose { recording: 999 }, &table).unwrap_err();
        assert_eq!(none.kind, ErrorKind::NoSuchRecording, "{none}");
        assert_eq!(none.message, "no recording 999 is open");
    }
}
