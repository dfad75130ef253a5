//! A blocking client for the control socket, used by `tollgate ctl`, the
//! control plane and the tests.
//!
//! [`ControlClient::request_typed`] and [`ControlClient::request_all_typed`]
//! answer with the typed [`Reply`] or the typed refusal ([`ControlError`]),
//! the connection's own failures apart; [`ControlClient::request`] and
//! [`ControlClient::raw`] answer with the reply's JSON, for tools and tests
//! that look at the wire.

use crate::control::{self, ControlError, Frame, Reply, Request};
use serde_json::Value;
use std::io::{self, BufReader};
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

impl From<ControlError> for ClientError {
    fn from(e: ControlError) -> Self {
        ClientError::Refused(e.message)
    }
}

/// What the data plane answered one request: its reply, or its refusal.
pub type Answer<T> = Result<T, ControlError>;

/// The most requests sent before their replies are read.
const BATCH: usize = 128;

pub struct ControlClient {
    /// Replies are read through a buffer: one `read` takes every reply
    /// the data plane sent for a batch of requests.
    stream: BufReader<UnixStream>,
}

impl ControlClient {
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        Ok(ControlClient {
            stream: BufReader::new(stream),
        })
    }

    /// Sends a request and returns the data plane's typed answer. The outer
    /// error is the connection's (or a reply that does not fit the request).
    pub fn request_typed(&mut self, req: &Request) -> Result<Answer<Reply>, ClientError> {
        control::write_frame(self.stream.get_mut(), &control::encode_request(req))?;
        typed(req, self.reply()?)
    }

    /// Sends every request before reading any reply (the data plane answers
    /// a connection's requests in order), saving a round trip per request.
    /// The outer error is the connection's; the inner ones each request's.
    pub fn request_all_typed(
        &mut self,
        reqs: &[Request],
    ) -> Result<Vec<Answer<Reply>>, ClientError> {
        let answers = self.exchange_all(reqs)?;
        reqs.iter()
            .zip(answers)
            .map(|(req, a)| typed(req, a))
            .collect()
    }

    /// Sends a request and returns the `result` of a successful reply.
    pub fn request(&mut self, req: &Request) -> Result<Value, ClientError> {
        self.raw(&control::encode_request(req))
    }

    /// Sends an already-encoded request body (tests use this for bad input).
    pub fn raw(&mut self, body: &[u8]) -> Result<Value, ClientError> {
        control::write_frame(self.stream.get_mut(), body)?;
        Ok(self.reply()??)
    }

    /// [`ControlClient::request_all_typed`], answering with the JSON.
    pub fn request_all(
        &mut self,
        reqs: &[Request],
    ) -> Result<Vec<Result<Value, ClientError>>, ClientError> {
        let answers = self.exchange_all(reqs)?;
        Ok(answers
            .into_iter()
            .map(|a| a.map_err(ClientError::from))
            .collect())
    }

    fn exchange_all(&mut self, reqs: &[Request]) -> Result<Vec<Answer<Value>>, ClientError> {
        let mut answers = Vec::with_capacity(reqs.len());
        let mut frames = Vec::new();
        // In chunks whose replies fit the socket's buffer: a data plane
        // blocked writing replies nobody reads would stop reading requests.
        for chunk in reqs.chunks(BATCH) {
            frames.clear();
            for r in chunk {
                control::push_frame(&mut frames, &control::encode_request(r))?;
            }
            std::io::Write::write_all(self.stream.get_mut(), &frames)?;
            for _ in chunk {
                answers.push(self.reply()?);
            }
        }
        Ok(answers)
    }

    /// Reads one reply: the `result` of a success, or the refusal.
    fn reply(&mut self) -> Result<Answer<Value>, ClientError> {
        match control::read_frame(&mut self.stream, control::MAX_REPLY)? {
            Frame::Body(b) => control::decode_reply(&b).map_err(ClientError::BadReply),
            Frame::Closed => Err(ClientError::Closed),
            Frame::TooLarge(n) => Err(ClientError::BadReply(format!("{n}-byte frame"))),
        }
    }
}

/// An answer to `req`, its `result` read as the reply to that request.
fn typed(req: &Request, answer: Answer<Value>) -> Result<Answer<Reply>, ClientError> {
    match answer {
        Ok(v) => Reply::decode(req, v)
            .map(Ok)
            .map_err(|e| ClientError::BadReply(format!("{req:?}: {e}"))),
        Err(refused) => Ok(Err(refused)),
    }
}
