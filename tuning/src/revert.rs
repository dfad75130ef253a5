//! `tollgate tune revert FILE`: the revert file `apply` writes before it
//! changes anything ([`RevertFile`]: host, time, and each setting's old and
//! new value), and putting every value back exactly as it was read
//! ([`revert`]), saying which were already back and which could not be
//! restored.

use crate::apply::settings::{same_value, Settings};
use crate::apply::{shown, Step};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The record of one `apply`, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertFile {
    /// The host the changes were made on.
    pub host: String,
    /// When, in UTC (RFC 3339).
    pub timestamp: String,
    /// In the order they were made.
    pub changes: Vec<Step>,
}

impl RevertFile {
    pub fn new(host: &str, changes: Vec<Step>) -> Self {
        RevertFile {
            host: host.to_string(),
            timestamp: utc_rfc3339(SystemTime::now()),
            changes,
        }
    }

    /// Writes the file at `path` and syncs it and its directory, so it
    /// survives a crash during the changes; refuses to replace one.
    pub fn create(&self, path: &Path) -> Result<(), String> {
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => "it exists already and may hold the values of an earlier apply; revert it or pick another --revert-file".to_string(),
                _ => e.to_string(),
            })?;
        f.write_all(json.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::File::open(dir)?.sync_all())
            .map_err(|e| e.to_string())
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a tollgate revert file: {e}", path.display()))
    }
}

/// Where `apply` writes the revert file unless told: the node's state
/// directory, named by the time (`revert-20261201T094000Z.json`).
pub fn default_file() -> PathBuf {
    let stamp: String = utc_rfc3339(SystemTime::now())
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    PathBuf::from(format!("/var/lib/tollgate/tune/revert-{stamp}.json"))
}

/// What `revert` did with each change of the file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Put back, with the value each had before.
    pub restored: Vec<(Step, String)>,
    /// Already at the old value; left alone.
    pub already: Vec<Step>,
    /// Could not be restored, and why.
    pub failed: Vec<(Step, String)>,
}

/// Puts every change of `file` back to its old value, last change first,
/// and checks each reads back as it was; goes on past a failure so as much
/// as possible is restored.
pub fn revert(file: &RevertFile, settings: &mut dyn Settings) -> Outcome {
    let mut out = Outcome::default();
    for step in file.changes.iter().rev() {
        match restore(step, settings) {
            Ok(None) => out.already.push(step.clone()),
            Ok(Some(was)) => out.restored.push((step.clone(), was)),
            Err(why) => out.failed.push((step.clone(), why)),
        }
    }
    out
}

/// Restores one step: None when it was already back, else the value it had.
fn restore(step: &Step, settings: &mut dyn Settings) -> Result<Option<String>, String> {
    let now = settings.read(&step.setting)?;
    if same_value(&now, &step.old) {
        return Ok(None);
    }
    settings.write(&step.setting, &step.old)?;
    let back = settings.read(&step.setting)?;
    if !same_value(&back, &step.old) {
        return Err(format!("wrote {:?}, but it reads back {back:?}", step.old));
    }
    Ok(Some(now))
}

impl Outcome {
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (st, was) in &self.restored {
            let note = if same_value(was, &st.new) {
                String::new()
            } else {
                format!(
                    " (it was {}, not the {} apply set)",
                    shown(was),
                    shown(&st.new)
                )
            };
            let _ = writeln!(
                s,
                "restored {}: {} -> {}{note}",
                st.setting,
                shown(was),
                shown(&st.old)
            );
        }
        for st in &self.already {
            let _ = writeln!(s, "already back: {} is {}", st.setting, shown(&st.old));
        }
        for (st, why) in &self.failed {
            let _ = writeln!(
                s,
                "NOT restored: {} (to {}): {why}",
                st.setting,
                shown(&st.old)
            );
        }
        s
    }
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::settings::memory::Memory;
    use crate::model::Setting;

    fn step(name: &str, old: &str, new: &str) -> Step {
        Step {
            finding: format!("sysctl.{name}"),
            setting: Setting::Sysctl { name: name.into() },
            old: old.into(),
            new: new.into(),
        }
    }

    #[test]
    fn revert_restores_last_first_and_names_what_was_back_or_refused() {
        let file = RevertFile::new(
            "node1",
            vec![
                step("a", "1", "2"),
                step("b", "1", "2"),
                step("c", "1", "2"),
            ],
        );
        let mut m = Memory::default();
        for (n, v) in [("a", "2"), ("b", "1"), ("c", "5")] {
            m.values
                .insert(Setting::Sysctl { name: n.into() }, v.into());
        }
        m.refuse = Some(Setting::Sysctl { name: "a".into() });
        let out = revert(&file, &mut m);
        let names = |v: Vec<&Step>| v.iter().map(|s| s.finding.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(out.restored.iter().map(|r| &r.0).collect()),
            ["sysctl.c"]
        );
        assert_eq!(names(out.already.iter().collect()), ["sysctl.b"]);
        assert_eq!(
            names(out.failed.iter().map(|r| &r.0).collect()),
            ["sysctl.a"]
        );
        let text = out.describe();
        for want in [
            "restored sysctl c: 5 -> 1 (it was 5, not the 2 apply set)",
            "already back: sysctl b is 1",
            "NOT restored: sysctl a (to 1): Invalid argument",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }

    #[test]
    fn a_value_that_does_not_read_back_is_not_restored() {
        struct Stuck;
        impl Settings for Stuck {
            fn read(&self, _: &Setting) -> Result<String, String> {
                Ok("2".into())
            }
            fn write(&mut self, _: &Setting, _: &str) -> Result<(), String> {
                Ok(())
            }
        }
        let out = revert(&RevertFile::new("n", vec![step("a", "1", "2")]), &mut Stuck);
        assert_eq!(out.failed[0].1, "wrote \"1\", but it reads back \"2\"");
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        let t = |s| utc_rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(t(0), "1970-01-01T00:00:00Z");
        assert_eq!(t(951_782_400 + 86_399), "2000-02-29T23:59:59Z");
    }
}
