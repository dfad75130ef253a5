//! The control plane's link to the data plane: a [`MediaPlane`] over the
//! data plane's control socket. It remembers every flow it installed and
//! every recording it opened, and when it reconnects to a data plane that
//! restarted (its `hello` instance changed) it opens the recordings again
//! under their numbers (their captures appended to) and installs the flows
//! again, taps and all, so calls and their recordings survive a data-plane
//! restart on any backend (with XDP the flows were never gone and
//! re-installing is a no-op).

use crate::media::{Applied, FlowStat, MediaPlane};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tollgate_dataplane::client::{Answer, ControlClient};
use tollgate_dataplane::control::{ErrorKind, Reply, Request};
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::recorder::RecordingReport;
use tollgate_dataplane::table::FlowReport;

pub struct DataplaneLink {
    socket: PathBuf,
    client: Option<ControlClient>,
    flows: BTreeMap<SocketAddr, Flow>,
    /// Open recordings: their directories, by number.
    recordings: BTreeMap<u32, PathBuf>,
    /// The data plane instance the flows were installed into.
    instance: Option<u64>,
}

impl DataplaneLink {
    pub fn new(socket: PathBuf) -> Self {
        DataplaneLink {
            socket,
            client: None,
            flows: BTreeMap::new(),
            recordings: BTreeMap::new(),
            instance: None,
        }
    }

    fn connect(&mut self) -> Result<&mut ControlClient, String> {
        if self.client.is_none() {
            let mut c = ControlClient::connect(&self.socket)
                .map_err(|e| format!("data plane unreachable: {e}"))?;
            let hello = match c.request_typed(&Request::Hello) {
                Ok(Ok(Reply::Hello(h))) => h,
                Ok(Ok(other)) => return Err(unexpected(&other)),
                Ok(Err(e)) => return Err(format!("data plane hello: {e}")),
                Err(e) => return Err(format!("data plane hello: {e}")),
            };
            let restarted = self.instance.is_some_and(|i| i != hello.instance);
            if restarted && !(self.flows.is_empty() && self.recordings.is_empty()) {
                self.restore(&mut c);
            }
            self.instance = Some(hello.instance);
            self.client = Some(c);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    /// Opens every remembered recording and installs every remembered
    /// flow in a data plane that lost them (recordings first, as the
    /// flows' taps name them).
    fn restore(&self, c: &mut ControlClient) {
        tracing::warn!(
            flows = self.flows.len(),
            recordings = self.recordings.len(),
            "the data plane restarted; opening recordings and installing flows again"
        );
        let mut send = |req: Request| match c.request_typed(&req) {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        for (&n, dir) in &self.recordings {
            let dir = dir.clone();
            if let Some(e) = send(Request::RecordingOpen {
                dir,
                recording: Some(n),
            }) {
                tracing::error!(recording = n, error = %e, "recording not reopened; its taps record nothing");
            }
        }
        for f in self.flows.values() {
            if let Some(e) = send(Request::FlowPut { flow: f.clone() }) {
                tracing::error!(local = %f.local, error = %e, "flow not restored");
            }
        }
    }

    /// Several requests in one exchange, reconnecting once if the
    /// connection broke (every request here may be repeated safely). The
    /// error is the link's; each answer is the data plane's.
    fn call_all(&mut self, reqs: &[Request]) -> Result<Vec<Answer<Reply>>, String> {
        for attempt in 0..2 {
            match self.connect()?.request_all_typed(reqs) {
                Ok(answers) => return Ok(answers),
                Err(e) if attempt == 0 => {
                    tracing::warn!(error = %e, "data plane connection lost; reconnecting");
                    self.client = None;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }
}

impl MediaPlane for DataplaneLink {
    fn apply(&mut self, puts: &[Flow], removes: &[SocketAddr]) -> Applied {
        let reqs: Vec<Request> = puts
            .iter()
            .map(|f| Request::FlowPut { flow: f.clone() })
            .chain(removes.iter().map(|l| Request::FlowDel { local: *l }))
            .collect();
        let answers = match self.call_all(&reqs) {
            Ok(a) => a,
            Err(e) => {
                return Applied {
                    puts: puts.iter().map(|_| Err(e.clone())).collect(),
                    removed: removes.iter().map(|_| Err(e.clone())).collect(),
                }
            }
        };
        let mut answers = answers.into_iter();
        let mut applied = Applied::default();
        for (f, a) in puts.iter().zip(answers.by_ref()) {
            if a.is_ok() {
                self.flows.insert(f.local, f.clone());
            }
            applied.puts.push(a.map(|_| ()).map_err(|e| e.message));
        }
        for (l, a) in removes.iter().zip(answers) {
            self.flows.remove(l);
            applied
                .removed
                .push(report(a).map(|r| r.as_ref().map(flow_stat)));
        }
        applied
    }

    fn stats(&mut self) -> Result<HashMap<SocketAddr, FlowStat>, String> {
        match self.call_one(Request::FlowList)? {
            Reply::Flows(list) => Ok(list.iter().map(|r| (r.flow.local, flow_stat(r))).collect()),
            other => Err(unexpected(&other)),
        }
    }

    fn flow_stats(
        &mut self,
        locals: &[SocketAddr],
    ) -> Result<HashMap<SocketAddr, FlowStat>, String> {
        let reqs: Vec<Request> = locals
            .iter()
            .map(|l| Request::FlowGet { local: *l })
            .collect();
        let mut out = HashMap::new();
        for a in self.call_all(&reqs)? {
            if let Some(r) = report(a)? {
                out.insert(r.flow.local, flow_stat(&r));
            }
        }
        Ok(out)
    }

    /// Makes the directory (with room for its description) on this host,
    /// then has the data plane open the capture in it.
    fn open_recording(&mut self, dir: &Path) -> Result<u32, String> {
        crate::recording::publish::prepare(dir)?;
        let req = Request::RecordingOpen {
            dir: dir.to_path_buf(),
            recording: None,
        };
        let n = self.recording(req)?.recording;
        self.recordings.insert(n, dir.to_path_buf());
        Ok(n)
    }

    fn close_recording(&mut self, recording: u32) -> Result<RecordingReport, String> {
        self.recordings.remove(&recording);
        self.recording(Request::RecordingClose { recording })
    }

    /// Reopens it in the data plane at once (a no-op where it is open, as
    /// when only the control plane restarted).
    fn keep_recording(&mut self, recording: u32, dir: &Path) -> Result<(), String> {
        self.recordings.insert(recording, dir.to_path_buf());
        let req = Request::RecordingOpen {
            dir: dir.to_path_buf(),
            recording: Some(recording),
        };
        self.recording(req).map(drop)
    }

    fn discard_recording(&mut self, recording: u32, dir: &Path) -> Result<(), String> {
        let closed = self.close_recording(recording);
        let removed = std::fs::remove_dir_all(dir)
            .map_err(|e| format!("recording directory {}: {e}", dir.display()));
        closed.and(removed)
    }

    fn events(&mut self) -> Result<Vec<tollgate_dataplane::pipeline::Event>, String> {
        match self.call_one(Request::Events)? {
            Reply::Events(e) => Ok(e),
            other => Err(unexpected(&other)),
        }
    }
}

impl DataplaneLink {
    /// One request, its answer the data plane's or the link's error.
    fn call_one(&mut self, req: Request) -> Result<Reply, String> {
        let answer = self.call_all(&[req])?.pop();
        answer
            .expect("one answer per request")
            .map_err(|e| e.message)
    }

    fn recording(&mut self, req: Request) -> Result<RecordingReport, String> {
        match self.call_one(req)? {
            Reply::Recording(r) => Ok(*r),
            other => Err(unexpected(&other)),
        }
    }
}

/// The answer to `flow_get` or `flow_del`: the flow's report, or None when
/// the data plane has no such flow.
fn report(answer: Answer<Reply>) -> Result<Option<FlowReport>, String> {
    match answer {
        Ok(Reply::Flow(r)) => Ok(Some(*r)),
        Ok(other) => Err(unexpected(&other)),
        Err(e) if e.kind == ErrorKind::NoSuchFlow => Ok(None),
        Err(e) => Err(e.message),
    }
}

/// A data-plane flow report as the session manager needs it.
pub fn flow_stat(r: &FlowReport) -> FlowStat {
    let rtp = r.counters.rtp;
    FlowStat {
        packets: r.counters.packets,
        bytes: r.counters.bytes,
        idle_ms: r.idle_ms,
        last_packet_ms_ago: r.last_packet_ms_ago,
        lost: rtp.map(|q| q.lost),
        jitter: rtp.map(|q| u64::from(q.jitter)),
        rtt_us: r.counters.remote.and_then(|x| x.rtt_us),
        remote_lost: r.counters.remote.map(|x| i64::from(x.cumulative_lost)),
        remote_jitter: r.counters.remote.map(|x| u64::from(x.jitter)),
    }
}

/// A reply of another op's shape than the request's: [`Reply::decode`]
/// rules it out, so only a data plane speaking another protocol gets here.
fn unexpected(r: &Reply) -> String {
    format!("unexpected reply from the data plane: {r:?}")
}
