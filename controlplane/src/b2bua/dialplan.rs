//! The dialplan: the dialled number (Request-URI user) to a target URI and
//! address, to an IVR menu answered here, or to a rejection; the org the
//! call belongs to, and whether it is recorded (the route's `record`, or
//! its org's default). First
//! matching route wins; no match is 404.

use super::config::{OrgConfig, RouteConfig, RouteSrtp};
use std::net::SocketAddr;
use tollgate_sip::message::{reason_phrase, Uri};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send the call to `uri` at `addr`.
    Forward {
        uri: String,
        addr: SocketAddr,
    },
    /// Send the call to where the dialled user registered.
    Registered,
    /// Send the call to the gateways least-cost routing picks.
    Lcr,
    /// Answer the call here, in this IVR menu.
    Ivr {
        menu: String,
    },
    Reject {
        code: u16,
        reason: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Dialplan {
    routes: Vec<RouteConfig>,
    orgs: Vec<OrgConfig>,
}

/// `pattern` against `number`: `x` is any digit, a trailing `*` any rest.
fn matches(pattern: &str, number: &str) -> bool {
    let (p, open) = match pattern.strip_suffix('*') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let (pn, nn) = (p.chars().count(), number.chars().count());
    if nn < pn || (!open && nn != pn) {
        return false;
    }
    p.chars()
        .zip(number.chars())
        .all(|(a, b)| a == b || (a.eq_ignore_ascii_case(&'x') && b.is_ascii_digit()))
}

impl Dialplan {
    pub fn new(routes: &[RouteConfig], orgs: &[OrgConfig]) -> Self {
        Dialplan {
            routes: routes.to_vec(),
            orgs: orgs.to_vec(),
        }
    }

    fn find(&self, number: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| matches(&r.pattern, number))
    }

    /// The `srtp` setting of the route `number` takes.
    pub fn srtp(&self, number: &str) -> Option<RouteSrtp> {
        self.find(number).and_then(|r| r.srtp)
    }

    /// The org of the route `number` takes.
    pub fn org(&self, number: &str) -> Option<&str> {
        self.find(number).and_then(|r| r.org.as_deref())
    }

    /// Whether the route `number` takes records its calls: its own
    /// `record` where it says, else its org's default.
    pub fn records(&self, number: &str) -> bool {
        let Some(r) = self.find(number) else {
            return false;
        };
        let org = |name: &String| self.orgs.iter().find(|o| &o.name == name);
        r.record
            .unwrap_or_else(|| r.org.as_ref().and_then(org).is_some_and(|o| o.record))
    }

    pub fn decide(&self, number: &str) -> Decision {
        let Some(r) = self.find(number) else {
            return Decision::Reject {
                code: 404,
                reason: "No Route".into(),
            };
        };
        match (&r.target, r.reject) {
            (Some(t), _) if t == super::config::REGISTERED => Decision::Registered,
            (Some(t), _) if t == super::config::LCR => Decision::Lcr,
            (Some(t), _) if t.starts_with(super::config::IVR) => Decision::Ivr {
                menu: t[super::config::IVR.len()..].to_string(),
            },
            (Some(t), _) => {
                let uri = t.replace("{user}", number);
                let addr = Uri::parse(&uri)
                    .ok()
                    .and_then(|u| Some(SocketAddr::new(u.ip()?, u.port.unwrap_or(5060))));
                match addr {
                    Some(addr) => Decision::Forward { uri, addr },
                    // The number made the URI invalid (config checks the rest).
                    None => Decision::Reject {
                        code: 484,
                        reason: "Address Incomplete".into(),
                    },
                }
            }
            (None, code) => {
                let code = code.unwrap_or(404);
                Decision::Reject {
                    code,
                    reason: r
                        .reason
                        .clone()
                        .unwrap_or_else(|| reason_phrase(code).into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(pattern: &str, target: Option<&str>, reject: Option<u16>) -> RouteConfig {
        RouteConfig {
            pattern: pattern.into(),
            target: target.map(str::to_string),
            reject,
            reason: None,
            srtp: None,
            record: None,
            org: None,
        }
    }

    #[test]
    fn first_match_wins_and_default_is_404() {
        let d = Dialplan::new(
            &[
                route("9999", None, Some(480)),
                route("6000", Some("sip:6000@127.0.0.1:5090"), None),
                route("555xxxx", Some("sip:{user}@10.0.0.9"), None),
                route("44*", None, Some(403)),
                route("7xxx", Some("registered"), None),
                route("8000", Some("ivr:main"), None),
            ],
            &[],
        );
        assert_eq!(
            d.decide("8000"),
            Decision::Ivr {
                menu: "main".into()
            }
        );
        assert_eq!(d.decide("7001"), Decision::Registered);
        assert_eq!(
            d.decide("9999"),
            Decision::Reject {
                code: 480,
                reason: "Temporarily Unavailable".into()
            }
        );
        assert_eq!(
            d.decide("5551234"),
            Decision::Forward {
                uri: "sip:5551234@10.0.0.9".into(),
                addr: "10.0.0.9:5060".parse().unwrap()
            }
        );
        assert!(matches!(
            d.decide("555123"),
            Decision::Reject { code: 404, .. }
        ));
        assert!(matches!(
            d.decide("5551234x"),
            Decision::Reject { code: 404, .. }
        ));
        assert!(matches!(
            d.decide("4420"),
            Decision::Reject { code: 403, .. }
        ));
        assert!(matches!(d.decide("6000"), Decision::Forward { .. }));
    }

    #[test]
    fn the_matching_route_says_whether_to_record() {
        let recorded = RouteConfig {
            record: Some(true),
            ..route("6xxx", Some("sip:{user}@10.0.0.9"), None)
        };
        let d = Dialplan::new(
            &[route("6000", Some("sip:a@10.0.0.8"), None), recorded],
            &[],
        );
        assert!(!d.records("6000"), "the first match wins");
        assert!(d.records("6001"));
        assert!(!d.records("7000"), "no route, nothing recorded");
    }

    #[test]
    fn a_route_records_when_it_or_its_org_says_so() {
        let of = |pattern: &str, org: &str, record: Option<bool>| RouteConfig {
            org: Some(org.into()),
            record,
            ..route(pattern, Some("sip:{user}@10.0.0.9"), None)
        };
        let orgs = [
            OrgConfig {
                name: "acme".into(),
                record: true,
            },
            OrgConfig {
                name: "globex".into(),
                record: false,
            },
        ];
        let d = Dialplan::new(
            &[
                of("1xxx", "acme", None),
                of("2xxx", "acme", Some(false)),
                of("3xxx", "globex", None),
                of("4xxx", "globex", Some(true)),
            ],
            &orgs,
        );
        assert!(d.records("1000"), "acme records by default");
        assert!(!d.records("2000"), "a route's own record = false wins");
        assert!(!d.records("3000"));
        assert!(d.records("4000"));
        assert_eq!(d.org("3000"), Some("globex"));
        assert_eq!(d.org("9000"), None);
    }
}
