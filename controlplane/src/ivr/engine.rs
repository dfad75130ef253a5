//! The IVR engine: one sans-IO state machine per call in the IVR, in the
//! manner of the B2BUA. Inputs carry [`Now`]: a call entering a menu, a
//! digit (from RFC 4733, SIP INFO or in-band: the adapter does not care
//! which), a prompt that finished, and [`Engine::handle_timeout`] at
//! [`Engine::poll_timeout`] for the digit timers. Outputs come from
//! [`Engine::poll_output`]: prompts to play (each with a token its
//! `prompt_done` must bring back, so a late report of a replaced prompt is
//! ignored), stops, transfers, queueing and hang-ups.
//!
//! In a menu: its welcome plays; a digit during it stops it (barge-in) and
//! counts as an answer; after it the caller has `digit_timeout` to press.
//! An option's digit acts; `*`, unless an option takes it, plays the menu
//! again; any other digit plays the invalid prompt, and no digit in time
//! the timeout prompt, each followed by the menu again. After
//! `max_retries` of those in one menu the goodbye prompt plays and the
//! call is hung up. `play` plays its prompt, then the menu again.

use super::config::IvrConfig;
use super::menu::{Action, Menu, Menus, Prompt, Target};
use crate::time::Now;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the adapter is asked to do for `call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Play `prompt` to the caller (replacing what plays); report its end
    /// with [`Engine::prompt_done`] and this token.
    Play {
        call: String,
        prompt: Prompt,
        token: u64,
    },
    /// Stop what plays (a digit cut it short).
    Stop {
        call: String,
    },
    Transfer {
        call: String,
        target: Target,
    },
    Queue {
        call: String,
        queue: String,
    },
    Hangup {
        call: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IvrError {
    #[error("IVR menu {0:?} does not exist")]
    UnknownMenu(String),
    #[error("call {0:?} is already in the IVR")]
    AlreadyIn(String),
}

/// What a call did in the IVR, for its CDR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail {
    /// Menus in the order the caller entered them.
    pub menus: Vec<String>,
    /// Every digit heard, valid or not.
    pub digits: String,
    /// How the IVR let the call go (transfer, queue or hangup), if it did.
    pub exit: Option<Output>,
}

/// What the playing prompt is, so its end leads to the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Playing {
    /// The menu's welcome: then wait for a digit.
    Welcome,
    /// Invalid, timeout or a `play` option: then the menu again.
    Notice,
    /// Then hang up.
    Goodbye,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Playing(Playing),
    /// Waiting for a digit until this instant.
    Collecting(Instant),
    /// Handed off (transfer, queue, hangup): inputs are ignored.
    Left,
}

struct Session {
    menu: Arc<Menu>,
    phase: Phase,
    /// Invalid digits and timeouts in this menu.
    misses: u32,
    token: u64,
    trail: Trail,
}

/// Counters since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub entered: u64,
    pub digits: u64,
    pub invalid: u64,
    pub timeouts: u64,
    /// Prompt ends whose token was not the current one (replaced prompts).
    pub stale_prompt_done: u64,
    /// Inputs for calls the engine does not have.
    pub unknown_call: u64,
}

pub struct Engine {
    menus: Menus,
    invalid: Prompt,
    timeout: Prompt,
    goodbye: Prompt,
    digit_timeout: Duration,
    max_retries: u32,
    sessions: HashMap<String, Session>,
    /// Digit deadlines; an entry whose call no longer collects until that
    /// instant is stale and skipped.
    timers: BinaryHeap<Reverse<(Instant, String)>>,
    out: VecDeque<Output>,
    next_token: u64,
    pub counters: Counters,
}

impl Engine {
    /// An engine over `menus`; `cfg` must have passed validation (its
    /// prompts parse).
    pub fn new(cfg: &IvrConfig, menus: Menus) -> Engine {
        let prompt = |s: &str| Prompt::parse(s).unwrap_or_else(|_| Prompt::Text(s.into()));
        Engine {
            menus,
            invalid: prompt(&cfg.invalid_prompt),
            timeout: prompt(&cfg.timeout_prompt),
            goodbye: prompt(&cfg.goodbye_prompt),
            digit_timeout: cfg.digit_timeout(),
            max_retries: cfg.max_retries,
            sessions: HashMap::new(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            next_token: 1,
            counters: Counters::default(),
        }
    }

    /// New menus (a reload): calls move to them at their next menu.
    pub fn set_menus(&mut self, menus: Menus) {
        self.menus = menus;
    }

    /// `call` enters the IVR at `menu`.
    pub fn start(&mut self, _now: Now, call: &str, menu: &str) -> Result<(), IvrError> {
        if self.sessions.contains_key(call) {
            return Err(IvrError::AlreadyIn(call.into()));
        }
        let menu = self
            .menus
            .get(menu)
            .ok_or_else(|| IvrError::UnknownMenu(menu.into()))?;
        self.counters.entered += 1;
        let s = Session {
            menu,
            phase: Phase::Left,
            misses: 0,
            token: 0,
            trail: Trail::default(),
        };
        self.sessions.insert(call.into(), s);
        self.enter(call, None);
        Ok(())
    }

    /// The caller pressed `digit`.
    pub fn handle_digit(&mut self, _now: Now, call: &str, digit: char) {
        let Some(s) = self.sessions.get_mut(call) else {
            self.counters.unknown_call += 1;
            return;
        };
        if matches!(s.phase, Phase::Left | Phase::Playing(Playing::Goodbye)) {
            return;
        }
        self.counters.digits += 1;
        s.trail.digits.push(digit);
        if let Phase::Playing(_) = s.phase {
            self.out.push_back(Output::Stop { call: call.into() });
        }
        match s.menu.options.get(&digit).cloned() {
            Some(action) => self.act(call, action),
            None if digit == '*' => self.play(call, Playing::Welcome, None),
            None => {
                self.counters.invalid += 1;
                self.miss(call, self.invalid.clone());
            }
        }
    }

    /// The prompt of `token` played to its end.
    pub fn prompt_done(&mut self, now: Now, call: &str, token: u64) {
        let Some(s) = self.sessions.get_mut(call) else {
            self.counters.unknown_call += 1;
            return;
        };
        let Phase::Playing(what) = s.phase else {
            self.counters.stale_prompt_done += 1;
            return;
        };
        if token != s.token {
            self.counters.stale_prompt_done += 1;
            return;
        }
        match what {
            Playing::Welcome => {
                let at = now.mono + self.digit_timeout;
                s.phase = Phase::Collecting(at);
                self.timers.push(Reverse((at, call.into())));
            }
            Playing::Notice => self.play(call, Playing::Welcome, None),
            Playing::Goodbye => self.leave(call, Output::Hangup { call: call.into() }),
        }
    }

    /// A transfer or queue of `call` that could not be carried out (the
    /// callee was busy, did not answer...): the caller is back in the menu
    /// it left, which plays again.
    pub fn resume(&mut self, call: &str) {
        let Some(s) = self.sessions.get_mut(call) else {
            self.counters.unknown_call += 1;
            return;
        };
        if s.phase == Phase::Left {
            s.trail.exit = None;
            self.enter(call, None);
        }
    }

    /// When [`Engine::handle_timeout`] is next due.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, call))) = self.timers.peek() {
            if self.collecting_until(call) == Some(*at) {
                return Some(*at);
            }
            self.timers.pop();
        }
        None
    }

    /// Digit timers due at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now.mono {
                break;
            }
            let Some(Reverse((at, call))) = self.timers.pop() else {
                break;
            };
            if self.collecting_until(&call) == Some(at) {
                self.counters.timeouts += 1;
                self.miss(&call, self.timeout.clone());
            }
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The call left (hung up, or its transfer or queue took it): its
    /// trail, if it was in the IVR.
    pub fn end(&mut self, call: &str) -> Option<Trail> {
        self.sessions.remove(call).map(|s| s.trail)
    }

    /// Calls in the IVR, handed-off ones until [`Engine::end`].
    pub fn calls(&self) -> usize {
        self.sessions.len()
    }

    fn collecting_until(&self, call: &str) -> Option<Instant> {
        match self.sessions.get(call)?.phase {
            Phase::Collecting(at) => Some(at),
            _ => None,
        }
    }

    fn act(&mut self, call: &str, action: Action) {
        match action {
            Action::Menu(id) => match self.menus.get(&id) {
                Some(menu) => self.enter(call, Some(menu)),
                // Removed by a reload since this menu was read.
                None => {
                    self.counters.invalid += 1;
                    self.miss(call, self.invalid.clone())
                }
            },
            Action::Play(p) => self.play(call, Playing::Notice, Some(p)),
            Action::Transfer(target) => self.leave(
                call,
                Output::Transfer {
                    call: call.into(),
                    target,
                },
            ),
            Action::Queue(queue) => self.leave(
                call,
                Output::Queue {
                    call: call.into(),
                    queue,
                },
            ),
            Action::Hangup => self.leave(call, Output::Hangup { call: call.into() }),
        }
    }

    /// Into `menu` (or the session's own, at start), retries counted anew.
    fn enter(&mut self, call: &str, menu: Option<Arc<Menu>>) {
        if let Some(s) = self.sessions.get_mut(call) {
            if let Some(m) = menu {
                s.menu = m;
            }
            s.misses = 0;
            s.trail.menus.push(s.menu.id.clone());
        }
        self.play(call, Playing::Welcome, None);
    }

    /// An invalid digit or a timeout: `notice`, then the menu again, or
    /// goodbye after too many.
    fn miss(&mut self, call: &str, notice: Prompt) {
        let Some(s) = self.sessions.get_mut(call) else {
            return;
        };
        s.misses += 1;
        match s.misses > self.max_retries {
            true => self.play(call, Playing::Goodbye, Some(self.goodbye.clone())),
            false => self.play(call, Playing::Notice, Some(notice)),
        }
    }

    /// Plays `prompt` (the menu's welcome when None) as `what`.
    fn play(&mut self, call: &str, what: Playing, prompt: Option<Prompt>) {
        let Some(s) = self.sessions.get_mut(call) else {
            return;
        };
        let token = self.next_token;
        self.next_token += 1;
        s.token = token;
        s.phase = Phase::Playing(what);
        let prompt = prompt.unwrap_or_else(|| s.menu.welcome.clone());
        self.out.push_back(Output::Play {
            call: call.into(),
            prompt,
            token,
        });
    }

    fn leave(&mut self, call: &str, exit: Output) {
        if let Some(s) = self.sessions.get_mut(call) {
            s.phase = Phase::Left;
            s.trail.exit = Some(exit.clone());
        }
        self.out.push_back(exit);
    }
}
