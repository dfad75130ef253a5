//! A blocking client for the control socket, used by `tollgate ctl`, the
//! control plane and the tests.

use crate::control::{self, Frame, Request};
use serde_json::Value;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("control socket {path}: {source}")]
    Connect { path: String, source: io::Error },
    #[error("control socket I/O: {0}")]
    Io(#[from] io::Error),
    #[error("the data plane closed the connection")]
    Closed,
    #[error("malformed reply from the data plane: {0}")]
    BadReply(String),
    /// The data plane refused the request; the message says why.
    #[error("{0}")]
    Refused(String),
}

pub struct ControlClient {
    stream: UnixStream,
}

impl ControlClient {
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        Ok(ControlClient { stream })
    }

    /// Sends a request and returns the `result` of a successful reply.
    pub fn request(&mut self, req: &Request) -> Result<Value, ClientError> {
        self.raw(&control::encode_request(req))
    }

    /// Sends an already-encoded request body (tests use this for bad input).
    pub fn raw(&mut self, body: &[u8]) -> Result<Value, ClientError> {
        control::write_frame(&mut self.stream, body)?;
        self.reply()
    }

    /// Sends every request before reading any reply (the data plane answers
    /// a connection's requests in order), saving a round trip per request.
    /// The outer error is the connection's; the inner ones each request's.
    pub fn request_all(
        &mut self,
        reqs: &[Request],
    ) -> Result<Vec<Result<Value, ClientError>>, ClientError> {
        let mut frames = Vec::new();
        for r in reqs {
            control::write_frame(&mut frames, &control::encode_request(r))?;
        }
        std::io::Write::write_all(&mut self.stream, &frames)?;
        let mut out = Vec::with_capacity(reqs.len());
        for _ in reqs {
            match self.reply() {
                Err(e @ ClientError::Refused(_)) => out.push(Err(e)),
                Err(e) => return Err(e),
                Ok(v) => out.push(Ok(v)),
            }
        }
        Ok(out)
    }

    /// Reads one reply: the `result` of a success, or the refusal.
    fn reply(&mut self) -> Result<Value, ClientError> {
        let reply = match control::read_frame(&mut self.stream, control::MAX_REPLY)? {
            Frame::Body(b) => b,
            Frame::Closed => return Err(ClientError::Closed),
            Frame::TooLarge(n) => return Err(ClientError::BadReply(format!("{n}-byte frame"))),
        };
        let mut v: Value =
            serde_json::from_slice(&reply).map_err(|e| ClientError::BadReply(e.to_string()))?;
        match v.get("ok").and_then(Value::as_bool) {
            Some(true) => Ok(v.get_mut("result").map(Value::take).unwrap_or(Value::Null)),
            Some(false) => Err(ClientError::Refused(
                v.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unspecified error")
                    .to_string(),
            )),
            None => Err(ClientError::BadReply(
                String::from_utf8_lossy(&reply).into_owned(),
            )),
        }
    }
}
