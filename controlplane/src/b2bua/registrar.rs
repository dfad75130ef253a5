//! The registrar (RFC 3261 §10): REGISTER binds a user's address of record
//! to contacts for a while; calls to that user go to its newest live
//! contact. Bindings live in memory; when nodes share registrations
//! (through Redis, see `regshare`), each change is exported as a
//! [`Shared`] list and other nodes' lists are merged in.

use crate::media::ms;
use crate::time::Now;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tollgate_sip::message::Message;
use tollgate_sip::view::{NameAddrRef, UriRef};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as registered.
    pub contact: String,
    /// Where requests for it are sent: the Contact's address, or the
    /// REGISTER's source when the Contact names a host we cannot resolve.
    pub addr: SocketAddr,
    pub expires: Instant,
}

#[derive(Debug, Default)]
pub struct Registrar {
    bindings: HashMap<String, Vec<Binding>>,
    /// Users whose bindings changed here since the last export.
    changed: Vec<String>,
}

/// A binding as nodes exchange it: absolute expiry in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shared {
    pub contact: String,
    pub addr: SocketAddr,
    pub expires_ms: i64,
}

/// What a REGISTER asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `Contact: *` with expiry 0: remove every binding.
    RemoveAll,
    /// Contacts with their requested expiry in seconds (0 removes).
    Set(Vec<(String, u32)>),
}

/// Reads the Contacts and expiry of a REGISTER (§10.2.1.1, §10.3 step 6).
pub fn requested(req: &Message, default_expires: u32) -> Result<Change, String> {
    let header_expires = req
        .header("Expires")
        .map(|e| e.parse::<u32>().map_err(|_| format!("Bad Expires {e:?}")))
        .transpose()?;
    let mut contacts = req.values("Contact");
    if contacts.next() == Some("*") && contacts.next().is_none() {
        return match header_expires {
            Some(0) => Ok(Change::RemoveAll),
            _ => Err("Contact * needs Expires: 0".into()),
        };
    }
    let mut out = Vec::new();
    for c in req.values("Contact") {
        let n = NameAddrRef::parse(c).map_err(|e| format!("Bad Contact: {e}"))?;
        UriRef::parse(n.uri).map_err(|e| format!("Bad Contact: {e}"))?;
        let exp = match n.param("expires") {
            Some(e) => e
                .parse::<u32>()
                .map_err(|_| format!("Bad Contact expires {e:?}"))?,
            None => header_expires.unwrap_or(default_expires),
        };
        out.push((n.uri.to_string(), exp));
    }
    Ok(Change::Set(out))
}

impl Registrar {
    /// Applies `change` for `user`; `source` is where the REGISTER came from.
    pub fn apply(&mut self, user: &str, change: Change, source: SocketAddr, now: Instant) {
        let list = self.bindings.entry(user.to_string()).or_default();
        list.retain(|b| b.expires > now);
        match change {
            Change::RemoveAll => list.clear(),
            Change::Set(contacts) => {
                for (contact, secs) in contacts {
                    list.retain(|b| b.contact != contact);
                    if secs == 0 {
                        continue;
                    }
                    let addr = UriRef::parse(&contact)
                        .ok()
                        .and_then(|u| {
                            let ip = u.host.parse().ok()?;
                            Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
                        })
                        .unwrap_or(source);
                    list.push(Binding {
                        contact,
                        addr,
                        expires: now + Duration::from_secs(secs.into()),
                    });
                }
            }
        }
        if list.is_empty() {
            self.bindings.remove(user);
        }
        self.changed.push(user.to_string());
    }

    /// Users changed since the last call, with their live bindings (empty:
    /// unregistered), for other nodes.
    pub fn export(&mut self, now: Now) -> Vec<(String, Vec<Shared>)> {
        let mut users = std::mem::take(&mut self.changed);
        users.sort();
        users.dedup();
        users
            .into_iter()
            .map(|u| {
                let list = self
                    .bindings(&u, now.mono)
                    .into_iter()
                    .map(|b| Shared {
                        contact: b.contact.clone(),
                        addr: b.addr,
                        expires_ms: ms(now.wall + b.expires.saturating_duration_since(now.mono)),
                    })
                    .collect();
                (u, list)
            })
            .collect()
    }

    /// Users whose export could not be shared (Redis down): exported again
    /// with the next call of [`Registrar::export`], with their bindings then.
    pub fn unshared(&mut self, users: impl IntoIterator<Item = String>) {
        self.changed.extend(users);
    }

    /// Takes another node's view of `user`'s bindings as the truth.
    pub fn merge(&mut self, user: &str, shared: &[Shared], now: Now) {
        let wall = ms(now.wall);
        let list: Vec<Binding> = shared
            .iter()
            .filter(|b| b.expires_ms > wall)
            .map(|b| Binding {
                contact: b.contact.clone(),
                addr: b.addr,
                expires: now.mono + Duration::from_millis((b.expires_ms - wall) as u64),
            })
            .collect();
        if list.is_empty() {
            self.bindings.remove(user);
        } else {
            self.bindings.insert(user.to_string(), list);
        }
    }

    /// The user's live bindings, newest last.
    pub fn bindings(&self, user: &str, now: Instant) -> Vec<&Binding> {
        self.bindings
            .get(user)
            .map(|l| l.iter().filter(|b| b.expires > now).collect())
            .unwrap_or_default()
    }

    /// Every user's live bindings.
    pub fn all(&self, now: Instant) -> impl Iterator<Item = (&str, &Binding)> {
        self.bindings.iter().flat_map(move |(user, l)| {
            l.iter()
                .filter(move |b| b.expires > now)
                .map(move |b| (user.as_str(), b))
        })
    }

    /// Where a call to `user` goes: its newest live binding.
    pub fn lookup(&self, user: &str, now: Instant) -> Option<&Binding> {
        self.bindings(user, now).into_iter().last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(contact: &str, expires: Option<&str>) -> Message {
        let mut m = Message::request("REGISTER", "sip:tollgate");
        m.add_header("Contact", contact);
        if let Some(e) = expires {
            m.add_header("Expires", e);
        }
        m
    }

    #[test]
    fn bindings_expire_refresh_and_go() {
        let t = Now::virtual_start();
        let now = t.mono;
        let src: SocketAddr = "192.0.2.9:5062".parse().unwrap();
        let mut r = Registrar::default();
        let c = requested(
            &register("<sip:6000@192.0.2.1:5070>;expires=60", None),
            3600,
        )
        .unwrap();
        r.apply("6000", c, src, now);
        let b = r.lookup("6000", now).unwrap();
        assert_eq!(b.addr, "192.0.2.1:5070".parse().unwrap());
        assert!(
            r.lookup("6000", now + Duration::from_secs(61)).is_none(),
            "expired"
        );
        let c = requested(&register("<sip:6000@phone.example>", Some("30")), 3600).unwrap();
        r.apply("6000", c, src, now);
        assert_eq!(
            r.lookup("6000", now).unwrap().addr,
            src,
            "a host name: the source"
        );
        assert_eq!(r.bindings("6000", now).len(), 2);
        r.apply(
            "6000",
            requested(&register("*", Some("0")), 3600).unwrap(),
            src,
            now,
        );
        assert!(r.lookup("6000", now).is_none());
        assert!(requested(&register("*", Some("10")), 3600).is_err());
        let exported = r.export(t);
        assert_eq!(
            exported,
            vec![("6000".to_string(), vec![])],
            "one entry per user, now empty"
        );
        let c = requested(&register("<sip:6000@192.0.2.1:5070>", Some("60")), 3600).unwrap();
        r.apply("6000", c, src, now);
        let shared = r.export(t).pop().unwrap().1;
        assert!(r.export(t).is_empty(), "exported once");
        r.unshared(["6000".to_string()]);
        assert_eq!(
            r.export(t),
            vec![("6000".to_string(), shared.clone())],
            "a registration not shared is exported again"
        );
        let mut other = Registrar::default();
        other.merge("6000", &shared, t);
        assert_eq!(
            other.lookup("6000", now).unwrap().addr,
            "192.0.2.1:5070".parse().unwrap()
        );
        other.merge("6000", &[], t);
        assert!(other.lookup("6000", now).is_none());
        assert!(requested(&register("<sip:x@y>;expires=soon", None), 3600).is_err());
    }
}
