//! SIP request methods (RFC 3261 §7.1 and the RFCs that added methods),
//! as a value compared without string compares. Method names are
//! case-sensitive: `invite` is an extension method, not INVITE.

use std::fmt;

/// A request method; extension methods keep their name as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// An extension method; make values with [`Method::parse`], which
    /// never puts a known name here.
    Other(&'a str),
}

/// How many methods are known (not [`Method::Other`]).
pub const KNOWN_COUNT: usize = 14;

const KNOWN: [(Method<'static>, &str); KNOWN_COUNT] = [
    (Method::Invite, "INVITE"),
    (Method::Ack, "ACK"),
    (Method::Bye, "BYE"),
    (Method::Cancel, "CANCEL"),
    (Method::Options, "OPTIONS"),
    (Method::Register, "REGISTER"),
    (Method::Info, "INFO"),
    (Method::Update, "UPDATE"),
    (Method::Prack, "PRACK"),
    (Method::Subscribe, "SUBSCRIBE"),
    (Method::Notify, "NOTIFY"),
    (Method::Refer, "REFER"),
    (Method::Message, "MESSAGE"),
    (Method::Publish, "PUBLISH"),
];

impl<'a> Method<'a> {
    /// The method a name means (exact case, per §7.1).
    pub fn parse(name: &'a str) -> Method<'a> {
        KNOWN
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(Method::Other(name), |(m, _)| *m)
    }

    /// A known method's place in a fixed order (0..[`KNOWN_COUNT`]), for
    /// tables indexed by method; None for an extension method.
    pub fn known_index(&self) -> Option<usize> {
        KNOWN.iter().position(|(m, _)| m == self)
    }

    /// The known methods' names, in [`Method::known_index`] order.
    pub fn known_names() -> impl Iterator<Item = &'static str> {
        KNOWN.iter().map(|(_, n)| *n)
    }

    /// The name as it goes on the wire.
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Other(name) => name,
            known => KNOWN
                .iter()
                .find(|(m, _)| m == known)
                .map_or("", |(_, n)| n),
        }
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_method_round_trips_and_case_matters() {
        for (m, name) in KNOWN {
            assert_eq!(Method::parse(name), m);
            assert_eq!(m.as_str(), name);
        }
        assert_eq!(Method::parse("invite"), Method::Other("invite"));
        assert_eq!(Method::parse("FOO").to_string(), "FOO");
    }
}
