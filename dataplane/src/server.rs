//! The control-socket server: accepts connections on the Unix socket, decodes
//! requests (see [`crate::control`]) and applies them to the flow table. One
//! thread per connection; clients are few (the control plane, `tollgate ctl`).

use crate::control::{self, Frame, Request};
use crate::table::{FlowTable, TableError};
use serde_json::{json, Value};
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Binds the control socket, replacing a stale socket file left by a previous
/// process (but refusing to steal one that a live data plane still answers on).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by another running data plane", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves until `stop` is set.
pub fn serve(listener: UnixListener, table: Arc<Mutex<FlowTable>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
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

fn connection(mut stream: UnixStream, table: &Mutex<FlowTable>) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    loop {
        let reply = match control::read_frame(&mut stream, control::MAX_REQUEST) {
            Ok(Frame::Body(body)) => match control::decode_request(&body) {
                Ok(req) => handle(req, table),
                Err(msg) => control::error_reply(&msg),
            },
            Ok(Frame::TooLarge(len)) => {
                let msg = format!(
                    "frame of {len} bytes exceeds the {} byte limit; closing",
                    control::MAX_REQUEST
                );
                let _ = control::write_frame(&mut stream, &control::error_reply(&msg));
                return;
            }
            Ok(Frame::Closed) | Err(_) => return,
        };
        if let Err(e) = control::write_frame(&mut stream, &reply) {
            tracing::warn!(error = %e, bytes = reply.len(), "control socket: reply not sent; closing the connection");
            return;
        }
    }
}

fn handle(req: Request, table: &Mutex<FlowTable>) -> Vec<u8> {
    let mut t = match table.lock() {
        Ok(t) => t,
        Err(poisoned) => poisoned.into_inner(),
    };
    let result: Result<Value, TableError> = match req {
        Request::Hello => Ok(json!({
            "version": control::PROTOCOL_VERSION,
            "backend": t.backend_name(),
            "instance": t.instance,
        })),
        Request::FlowPut { flow } => {
            let local = flow.local;
            t.put(flow).map(|()| {
                tracing::debug!(%local, "flow installed");
                Value::Null
            })
        }
        Request::FlowDel { local } => t.remove(local).map(|r| to_json(&r)),
        Request::FlowGet { local } => t.report(local).map(|r| to_json(&r)),
        Request::FlowList => Ok(to_json(&t.list())),
        Request::Idle => Ok(to_json(&t.idle())),
        Request::Workers => Ok(to_json(&t.workers())),
        Request::Events => Ok(to_json(&t.take_events())),
        Request::Counters => Ok(Value::Object(
            t.counters()
                .into_iter()
                .map(|(k, v)| (k, v.into()))
                .collect(),
        )),
    };
    match result {
        Ok(v) => control::ok_reply(v),
        Err(e) => control::error_reply(&e.to_string()),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("reports serialize")
}
