//! The IVR's menus as read from `ivr_menus` (menu_id, name,
//! welcome_message) and `ivr_menu_options` (menu_id, digit, action_type,
//! action_value): each row checked once when read, a bad one left out and
//! reported naming its menu, digit and fault, so a typo in one option
//! never takes the IVR down.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the caller hears: a prompt of the data plane's prompt cache
/// (`prompt:ID`, the number it was loaded as with `tollgate ctl
/// prompt-load ID FILE`) or text to be spoken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Cached(u32),
    Text(String),
}

impl Prompt {
    pub fn parse(s: &str) -> Result<Prompt, MenuError> {
        let s = s.trim();
        match s.strip_prefix("prompt:") {
            Some("") => Err(MenuError::Value {
                what: "prompt",
                value: s.into(),
                why: "no prompt id after `prompt:`",
            }),
            Some(id) => id
                .parse()
                .map(Prompt::Cached)
                .map_err(|_| MenuError::Value {
                    what: "prompt",
                    value: s.into(),
                    why: "the prompt id after `prompt:` is not a number (the prompt cache's)",
                }),
            None if s.is_empty() => Err(MenuError::Value {
                what: "prompt",
                value: s.into(),
                why: "empty",
            }),
            None => Ok(Prompt::Text(s.into())),
        }
    }
}

/// As written in the tables.
impl std::fmt::Display for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prompt::Cached(id) => write!(f, "prompt:{id}"),
            Prompt::Text(t) => f.write_str(t),
        }
    }
}

/// Where a transfer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A number for the dialplan (`6000`).
    Extension(String),
    /// A SIP URI (`sip:sales@192.0.2.7:5060`).
    Uri(String),
    /// An agent from the agents table (`agent:alice`), or `agent`: the
    /// online agent with the fewest calls.
    Agent(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Enter another menu.
    Menu(String),
    Transfer(Target),
    /// Wait in this queue for an agent.
    Queue(String),
    /// Play this, then the menu's prompt again.
    Play(Prompt),
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MenuError {
    #[error("{what} {value:?}: {why}")]
    Value {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("action_type {0:?}: expected menu, transfer, queue, play or hangup")]
    ActionType(String),
}

impl Action {
    /// An option's `action_type` and `action_value`.
    pub fn parse(kind: &str, value: Option<&str>) -> Result<Action, MenuError> {
        let value = value.map(str::trim).unwrap_or("");
        let needed = |what| match value.is_empty() {
            true => Err(MenuError::Value {
                what,
                value: value.into(),
                why: "empty",
            }),
            false => Ok(value.to_string()),
        };
        Ok(match kind.trim().to_ascii_lowercase().as_str() {
            "menu" => Action::Menu(needed("menu id")?),
            "transfer" => Action::Transfer(Target::parse(&needed("transfer target")?)?),
            "queue" if value.is_empty() => Action::Queue("default".into()),
            "queue" => Action::Queue(value.into()),
            "play" => Action::Play(Prompt::parse(value)?),
            "hangup" => Action::Hangup,
            other => return Err(MenuError::ActionType(other.into())),
        })
    }
}

impl Target {
    fn parse(v: &str) -> Result<Target, MenuError> {
        let lower = v.to_ascii_lowercase();
        if lower.starts_with("sip:") || lower.starts_with("sips:") {
            return match tollgate_sip::message::Uri::parse(v) {
                Ok(_) => Ok(Target::Uri(v.into())),
                Err(_) => Err(MenuError::Value {
                    what: "transfer target",
                    value: v.into(),
                    why: "not a valid SIP URI",
                }),
            };
        }
        if lower == "agent" {
            return Ok(Target::Agent(None));
        }
        if let Some(name) = v.strip_prefix("agent:") {
            return Ok(Target::Agent(Some(name.into())));
        }
        let dialable = |c: char| c.is_ascii_alphanumeric() || "+*#-_.".contains(c);
        match v.chars().all(dialable) {
            true => Ok(Target::Extension(v.into())),
            false => Err(MenuError::Value {
                what: "transfer target",
                value: v.into(),
                why: "expected an extension, a sip: URI, `agent` or `agent:NAME`",
            }),
        }
    }
}

/// As `action_type action_value`.
impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Menu(id) => write!(f, "menu {id}"),
            Action::Transfer(t) => write!(f, "transfer {t}"),
            Action::Queue(q) => write!(f, "queue {q}"),
            Action::Play(p) => write!(f, "play {p}"),
            Action::Hangup => f.write_str("hangup"),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Extension(e) => f.write_str(e),
            Target::Uri(u) => f.write_str(u),
            Target::Agent(None) => f.write_str("agent"),
            Target::Agent(Some(a)) => write!(f, "agent:{a}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    pub id: String,
    pub name: String,
    pub welcome: Prompt,
    pub options: BTreeMap<char, Action>,
}

/// One row of `ivr_menus`.
#[derive(Debug, Clone)]
pub struct MenuRow {
    pub menu_id: String,
    pub name: String,
    pub welcome_message: String,
}

/// One row of `ivr_menu_options`.
#[derive(Debug, Clone)]
pub struct OptionRow {
    pub menu_id: String,
    pub digit: String,
    pub action_type: String,
    pub action_value: Option<String>,
}

/// Every menu by id, shared read-only by the calls in them.
#[derive(Debug, Clone, Default)]
pub struct Menus {
    by_id: HashMap<String, Arc<Menu>>,
}

/// The digits a caller can press.
fn digit_of(s: &str) -> Option<char> {
    let mut it = s.trim().chars();
    match (it.next(), it.next()) {
        (Some(c), None) if c.is_ascii_digit() || "*#ABCD".contains(c) => Some(c),
        _ => None,
    }
}

impl Menus {
    /// The menus of these rows, and a sentence for each row left out.
    pub fn from_rows(menus: Vec<MenuRow>, options: Vec<OptionRow>) -> (Menus, Vec<String>) {
        let mut problems = Vec::new();
        let mut by_id = HashMap::new();
        for m in menus {
            match Prompt::parse(&m.welcome_message) {
                Ok(welcome) => {
                    let menu = Menu {
                        id: m.menu_id.clone(),
                        name: m.name,
                        welcome,
                        options: BTreeMap::new(),
                    };
                    by_id.insert(m.menu_id, menu);
                }
                Err(e) => problems.push(format!("ivr_menus {:?}: welcome_message: {e}", m.menu_id)),
            }
        }
        for o in options {
            let at = format!("ivr_menu_options {:?} digit {:?}", o.menu_id, o.digit);
            let parsed = match digit_of(&o.digit) {
                None => Err("not one of 0-9, *, #, A-D".to_string()),
                Some(d) => Action::parse(&o.action_type, o.action_value.as_deref())
                    .map(|a| (d, a))
                    .map_err(|e| e.to_string()),
            };
            let checked = parsed.and_then(|(d, a)| match &a {
                Action::Menu(to) if !by_id.contains_key(to) => {
                    Err(format!("goes to menu {to:?}, which does not exist"))
                }
                _ => Ok((d, a)),
            });
            match (checked, by_id.get_mut(&o.menu_id)) {
                (Err(e), _) => problems.push(format!("{at}: {e}")),
                (Ok(_), None) => problems.push(format!("{at}: no such menu")),
                (Ok((d, a)), Some(menu)) => {
                    menu.options.insert(d, a);
                }
            }
        }
        let by_id = by_id.into_iter().map(|(k, m)| (k, Arc::new(m))).collect();
        (Menus { by_id }, problems)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Menu>> {
        self.by_id.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The menus sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Menu> {
        let mut all: Vec<&Menu> = self.by_id.values().map(|m| m.as_ref()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all.into_iter()
    }
}
