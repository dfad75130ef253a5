//! `[ivr]`: where the menus are, and how long and how often a caller may
//! hesitate or mistype.

use super::menu::Prompt;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IvrConfig {
    /// `sqlite://…`, `postgres://…` or `mysql://…` holding `ivr_menus`
    /// and `ivr_menu_options` (created when missing).
    pub url: String,
    /// Empty tables get the demo menus (`main`, `billing`).
    pub seed_demo: bool,
    /// How often a running node reads the menus again (0: never); a call
    /// moves to the new ones at its next menu.
    pub reload_secs: u64,
    /// How long the engine waits for a digit after a menu's prompt.
    pub digit_timeout_ms: u64,
    /// Invalid digits and timeouts allowed in one menu before goodbye.
    pub max_retries: u32,
    /// Played after a digit the menu has no option for.
    pub invalid_prompt: String,
    /// Played when no digit came in time.
    pub timeout_prompt: String,
    /// Played before the IVR hangs up after too many retries.
    pub goodbye_prompt: String,
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            url: "sqlite:///var/lib/tollgate/ivr.sqlite".into(),
            seed_demo: true,
            reload_secs: 30,
            digit_timeout_ms: 5000,
            max_retries: 3,
            invalid_prompt: "Sorry, that is not a valid choice.".into(),
            timeout_prompt: "Sorry, I did not hear a choice.".into(),
            goodbye_prompt: "Goodbye.".into(),
        }
    }
}

impl IvrConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let schemes = ["sqlite:", "postgres:", "postgresql:", "mysql:", "mariadb:"];
        if !schemes.iter().any(|s| self.url.starts_with(s)) {
            problems.push(format!(
                "ivr.url {:?}: expected a sqlite:, postgres: or mysql: URL",
                self.url
            ));
        }
        if self.digit_timeout_ms == 0 {
            problems.push("ivr.digit_timeout_ms: must be above 0".into());
        }
        for (key, text) in [
            ("invalid_prompt", &self.invalid_prompt),
            ("timeout_prompt", &self.timeout_prompt),
            ("goodbye_prompt", &self.goodbye_prompt),
        ] {
            if let Err(e) = Prompt::parse(text) {
                problems.push(format!("ivr.{key}: {e}"));
            }
        }
        problems
    }

    pub fn digit_timeout(&self) -> Duration {
        Duration::from_millis(self.digit_timeout_ms)
    }
}
