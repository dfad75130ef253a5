//! The control plane's link to the data plane: a [`MediaPlane`] over the
//! data plane's control socket. It remembers every flow it installed, and
//! when it reconnects to a data plane that restarted (its `hello` instance
//! changed) it installs them all again, so calls survive a data-plane
//! restart on any backend (with XDP the flows were never gone and
//! re-installing is a no-op).

use crate::media::{FlowStat, MediaPlane};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use tollgate_dataplane::client::{ClientError, ControlClient};
use tollgate_dataplane::control::Request;
use tollgate_dataplane::flow::Flow;

pub struct DataplaneLink {
    socket: PathBuf,
    client: Option<ControlClient>,
    flows: BTreeMap<SocketAddr, Flow>,
    /// The data plane instance the flows were installed into.
    instance: Option<u64>,
}

impl DataplaneLink {
    pub fn new(socket: PathBuf) -> Self {
        DataplaneLink {
            socket,
            client: None,
            flows: BTreeMap::new(),
            instance: None,
        }
    }

    fn connect(&mut self) -> Result<&mut ControlClient, String> {
        if self.client.is_none() {
            let mut c = ControlClient::connect(&self.socket)
                .map_err(|e| format!("data plane unreachable: {e}"))?;
            let hello = c
                .request(&Request::Hello)
                .map_err(|e| format!("data plane hello: {e}"))?;
            let instance = hello["instance"].as_u64();
            if self.instance.is_some() && instance != self.instance && !self.flows.is_empty() {
                tracing::warn!(
                    flows = self.flows.len(),
                    "the data plane restarted; installing flows again"
                );
                for f in self.flows.values() {
                    if let Err(e) = c.request(&Request::FlowPut { flow: f.clone() }) {
                        tracing::error!(local = %f.local, error = %e, "flow not restored");
                    }
                }
            }
            self.instance = instance;
            self.client = Some(c);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    /// One request, reconnecting once if the connection broke.
    fn call(&mut self, req: &Request) -> Result<Json, String> {
        for attempt in 0..2 {
            match self.connect()?.request(req) {
                Ok(v) => return Ok(v),
                Err(ClientError::Refused(msg)) => return Err(msg),
                Err(e) if attempt == 0 => {
                    tracing::warn!(error = %e, "data plane connection lost; reconnecting");
                    self.client = None;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Several requests in one exchange, reconnecting once if the
    /// connection broke (every request here may be repeated safely).
    fn call_all(&mut self, reqs: &[Request]) -> Vec<Result<Json, String>> {
        for attempt in 0..2 {
            let client = match self.connect() {
                Ok(c) => c,
                Err(e) => return reqs.iter().map(|_| Err(e.clone())).collect(),
            };
            match client.request_all(reqs) {
                Ok(rs) => {
                    return rs
                        .into_iter()
                        .map(|r| {
                            r.map_err(|e| match e {
                                ClientError::Refused(msg) => msg,
                                e => e.to_string(),
                            })
                        })
                        .collect()
                }
                Err(e) if attempt == 0 => {
                    tracing::warn!(error = %e, "data plane connection lost; reconnecting");
                    self.client = None;
                }
                Err(e) => return reqs.iter().map(|_| Err(e.to_string())).collect(),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }
}

impl MediaPlane for DataplaneLink {
    fn apply(&mut self, puts: &[Flow], removes: &[SocketAddr]) -> Vec<Result<(), String>> {
        let reqs: Vec<Request> = puts
            .iter()
            .map(|f| Request::FlowPut { flow: f.clone() })
            .chain(removes.iter().map(|l| Request::FlowDel { local: *l }))
            .collect();
        let results = self.call_all(&reqs);
        for (f, r) in puts.iter().zip(&results) {
            if r.is_ok() {
                self.flows.insert(f.local, f.clone());
            }
        }
        for l in removes {
            self.flows.remove(l);
        }
        results
            .into_iter()
            .map(|r| match r {
                Err(e) if e.starts_with("no flow matches") => Ok(()),
                r => r.map(|_| ()),
            })
            .collect()
    }

    fn stats(&mut self) -> Result<HashMap<SocketAddr, FlowStat>, String> {
        let list = self.call(&Request::FlowList)?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(parse_report)
            .collect())
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
        for r in self.call_all(&reqs) {
            match r {
                Ok(r) => out.extend(parse_report(&r)),
                Err(e) if e.starts_with("no flow matches") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// A data-plane flow report as the session manager needs it.
fn parse_report(r: &Json) -> Option<(SocketAddr, FlowStat)> {
    let local = r["flow"]["local"].as_str()?.parse().ok()?;
    Some((
        local,
        FlowStat {
            packets: r["counters"]["packets"].as_u64().unwrap_or(0),
            bytes: r["counters"]["bytes"].as_u64().unwrap_or(0),
            idle_ms: r["idle_ms"].as_u64().unwrap_or(0),
            last_packet_ms_ago: r["last_packet_ms_ago"].as_u64(),
            lost: r["counters"]["rtp"]["lost"].as_u64(),
            jitter: r["counters"]["rtp"]["jitter"].as_u64(),
        },
    ))
}
