//! REGISTER and digest authentication: the registrar's side of the
//! B2BUA (RFC 3261 §10) and the challenges for INVITEs from untrusted
//! sources (RFC 8760 algorithms).

use super::*;

impl B2bua {
    /// Checks the digest credentials in `header`: the user's name, or the
    /// response to send (a challenge with `challenge` 401/407, or 403).
    pub(super) fn authenticate(
        &self,
        now: Now,
        req: &Message,
        header: &str,
        challenge: u16,
    ) -> Result<String, Message> {
        let method = req.method().unwrap_or_default();
        let challenged = |stale: bool| {
            let name = if challenge == 401 {
                "WWW-Authenticate"
            } else {
                "Proxy-Authenticate"
            };
            let mut r = Message::response_to(req, challenge, reason_phrase(challenge), None);
            for c in self.auth.challenges(now.wall, stale) {
                r.add_header(name, c);
            }
            r
        };
        let forbidden = |why: &str| {
            tracing::info!(method, why, "credentials refused");
            Message::response_to(req, 403, reason_phrase(403), None)
        };
        let Some(h) = req.header(header) else {
            return Err(challenged(false));
        };
        let c = Credentials::parse(h).map_err(|e| forbidden(&e))?;
        let Some(user) = self.cfg.users.iter().find(|u| u.name == c.username) else {
            return Err(forbidden("unknown user"));
        };
        match self.auth.verify(now.wall, method, &c, &user.password) {
            Ok(()) => Ok(c.username),
            Err(Rejection::Stale) => Err(challenged(true)),
            Err(Rejection::Invalid(why)) => Err(forbidden(&why)),
        }
    }

    /// Passes on the answer to refused credentials, counting a 403 against
    /// the source (repeated ones ban it).
    pub(super) fn refused_credentials(
        &mut self,
        now: Now,
        from: SocketAddr,
        r: Message,
    ) -> Message {
        if r.code() == Some(403) {
            self.guard.on_auth_failure(now.mono, from.ip());
        }
        r
    }

    /// A REGISTER: authenticated, then bindings changed; the response.
    pub(super) fn on_register(&mut self, now: Now, from: SocketAddr, req: &Message) -> Message {
        if self.cfg.users.is_empty() {
            return Message::response_to(req, 403, "No Users Configured", None);
        }
        let user = match self.authenticate(now, req, "Authorization", 401) {
            Ok(u) => u,
            Err(r) => return self.refused_credentials(now, from, r),
        };
        let to = req.view().to().ok();
        let aor = to.and_then(|n| user_of(n.uri)).unwrap_or_default();
        if aor != user {
            return Message::response_to(req, 403, "Not Your Address of Record", None);
        }
        let change = match registrar::requested(req, self.cfg.default_expires_secs) {
            Ok(c) => c,
            Err(why) => return Message::response_to(req, 400, &why, None),
        };
        let change = match change {
            registrar::Change::Set(list) => {
                let min = self.cfg.min_expires_secs;
                if list.iter().any(|(_, e)| *e != 0 && *e < min) {
                    let mut r = Message::response_to(req, 423, reason_phrase(423), None);
                    r.add_header("Min-Expires", min.to_string());
                    return r;
                }
                let max = self.cfg.max_expires_secs;
                registrar::Change::Set(list.into_iter().map(|(c, e)| (c, e.min(max))).collect())
            }
            all => all,
        };
        self.registrar.apply(&user, change, from, now.mono);
        let mut r = Message::response_to(req, 200, "OK", Some(&self.ids.id()));
        for b in self.registrar.bindings(&user, now.mono) {
            let left = b.expires.saturating_duration_since(now.mono).as_secs();
            r.add_header("Contact", format!("<{}>;expires={left}", b.contact));
        }
        tracing::info!(user, %from, "registered");
        r
    }
}
