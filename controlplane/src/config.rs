//! tollgate.toml: one file for the whole node, validated at start with
//! messages that name the key and say what is wrong. Sections grow with the
//! subsystems; today: `[dataplane]`.

use serde::{Deserialize, Serialize};
use std::path::Path;
use tollgate_dataplane::config::DataplaneConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub dataplane: DataplaneConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config file {path} is invalid:\n  {}", .problems.join("\n  "))]
    Invalid { path: String, problems: Vec<String> },
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, &p)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.into(),
            message: e.to_string(),
        })?;
        let problems = cfg.dataplane.validate(tollgate_dataplane::host_cores());
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: origin.into(),
                problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../../tollgate.example.toml");
        Config::parse(text, "tollgate.example.toml").unwrap();
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::parse("", "empty").unwrap();
        assert_eq!(c.dataplane, DataplaneConfig::default());
    }

    #[test]
    fn unknown_key_and_bad_value_are_named() {
        let e = Config::parse("[dataplane]\nbackend = \"xdp\"\nbogus = 1\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown field `bogus`") && e.contains("line 3"),
            "{e}"
        );
        let e = Config::parse("[dataplane]\nbackend = \"dpdk\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `dpdk`"), "{e}");
        let e = Config::parse("[dataplane]\nbackend = \"xdp\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dataplane.xdp.interfaces"), "{e}");
    }
}
