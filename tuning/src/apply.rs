//! `tollgate tune apply`: turns the report's findings into the changes to
//! make ([`plan`]), then makes them all or none ([`apply`]): the revert file
//! is written and synced first, each change is logged as it is made, and
//! when one write fails every change already made is restored, in reverse
//! order. Findings that need a reboot (kernel command line) or a person
//! (firmware, BIOS, services) are listed, never acted on.

pub mod settings;

use crate::model::{Finding, Setting, Severity};
use crate::revert::RevertFile;
use serde::{Deserialize, Serialize};
use settings::{same_value, Settings};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One change to make: a finding's setting, from the value read now to the
/// one the finding recommends. Also a line of the revert file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub finding: String,
    pub setting: Setting,
    pub old: String,
    pub new: String,
}

/// A finding `apply` prints but does not act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    pub finding: String,
    pub title: String,
    pub command: Option<String>,
}

/// What `apply` would do with the selected findings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The changes, in the report's order.
    pub steps: Vec<Step>,
    /// Findings whose setting already has the recommended value.
    pub already: Vec<Step>,
    /// Findings that need a reboot to take effect: printed, never made.
    pub reboot: Vec<Left>,
    /// Findings with no run-time change (firmware, BIOS, services).
    pub by_hand: Vec<Left>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("--only {id}: the report has no such finding (ids: {known})")]
    UnknownFinding { id: String, known: String },
    #[error(
        "findings {first} and {second} want {setting} set to {a:?} and {b:?}; pick one with --only"
    )]
    Conflict {
        first: String,
        second: String,
        setting: String,
        a: String,
        b: String,
    },
    #[error("cannot read {setting} (for {finding}), so it could not be restored: {why}; nothing was changed")]
    Read {
        finding: String,
        setting: Setting,
        why: String,
    },
    #[error("revert file {}: {why}; nothing was changed", path.display())]
    RevertFile { path: PathBuf, why: String },
    #[error("{0}")]
    Write(Box<WriteFailure>),
}

/// A write `apply` could not make, and how the rollback went.
#[derive(Debug)]
pub struct WriteFailure {
    /// The finding whose change failed (`--only` can leave it out).
    pub finding: String,
    pub failed: Setting,
    pub value: String,
    pub why: String,
    /// Settings put back, in the order they were restored.
    pub restored: Vec<Setting>,
    /// Settings that could not be put back, and why.
    pub unrestored: Vec<(Setting, String)>,
    pub revert_file: PathBuf,
}

impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "could not set {} to {:?} (for {}): {}; ",
            self.failed, self.value, self.finding, self.why
        )?;
        if self.restored.is_empty() {
            f.write_str("nothing had been changed before it")?;
        } else {
            let names: Vec<String> = self.restored.iter().map(Setting::to_string).collect();
            write!(f, "rolled back, in reverse order: {}", names.join(", "))?;
        }
        if !self.unrestored.is_empty() {
            let names: Vec<String> = self
                .unrestored
                .iter()
                .map(|(set, why)| format!("{set} ({why})"))
                .collect();
            write!(
                f,
                "; NOT restored: {}; `tollgate tune revert {}` retries them",
                names.join(", "),
                self.revert_file.display()
            )?;
        }
        Ok(())
    }
}

/// The changes for `findings` (all of them, or those whose ids are in
/// `only`), with each setting's current value read from `settings`.
pub fn plan(
    findings: &[Finding],
    only: &[String],
    settings: &dyn Settings,
) -> Result<Plan, ApplyError> {
    if let Some(id) = only
        .iter()
        .find(|id| !findings.iter().any(|f| &f.id == *id))
    {
        let known: Vec<&str> = findings.iter().map(|f| f.id.as_str()).collect();
        return Err(ApplyError::UnknownFinding {
            id: id.clone(),
            known: known.join(", "),
        });
    }
    let mut plan = Plan::default();
    for f in findings
        .iter()
        .filter(|f| only.is_empty() || only.contains(&f.id))
    {
        let left = || Left {
            finding: f.id.clone(),
            title: f.title.clone(),
            command: f.command.clone(),
        };
        match &f.change {
            _ if f.needs_reboot => plan.reboot.push(left()),
            None if f.severity > Severity::Ok => plan.by_hand.push(left()),
            None => {}
            Some(change) => {
                let old = settings
                    .read(&change.setting)
                    .map_err(|why| ApplyError::Read {
                        finding: f.id.clone(),
                        setting: change.setting.clone(),
                        why,
                    })?;
                let step = Step {
                    finding: f.id.clone(),
                    setting: change.setting.clone(),
                    old,
                    new: change.value.clone(),
                };
                plan.add(step)?;
            }
        }
    }
    Ok(plan)
}

impl Plan {
    fn add(&mut self, step: Step) -> Result<(), ApplyError> {
        let earlier = self.steps.iter().chain(&self.already);
        if let Some(e) = earlier.into_iter().find(|e| e.setting == step.setting) {
            if same_value(&e.new, &step.new) {
                return Ok(());
            }
            return Err(ApplyError::Conflict {
                first: e.finding.clone(),
                second: step.finding,
                setting: step.setting.to_string(),
                a: e.new.clone(),
                b: step.new,
            });
        }
        if same_value(&step.old, &step.new) {
            self.already.push(step);
        } else {
            self.steps.push(step);
        }
        Ok(())
    }

    /// What the plan does, for the operator: the changes (with the revert
    /// file that would be written first), what is already set, and what is
    /// left for a reboot or a person.
    pub fn describe(&self, revert_file: &Path, dry_run: bool) -> String {
        let mut s = String::new();
        let verb = if dry_run { "would change" } else { "changing" };
        if self.steps.is_empty() {
            s.push_str("nothing to change at run time\n");
        } else {
            let _ = writeln!(s, "{verb} {} setting(s):", self.steps.len());
            for st in &self.steps {
                let (old, new) = (shown(&st.old), shown(&st.new));
                let _ = writeln!(s, "  {}: {}: {old} -> {new}", st.finding, st.setting);
            }
            let _ = writeln!(
                s,
                "{} the revert file {path} first (`tollgate tune revert {path}` undoes it all)",
                if dry_run { "would write" } else { "writing" },
                path = revert_file.display()
            );
        }
        for st in &self.already {
            let _ = writeln!(
                s,
                "already set: {}: {} is {}",
                st.finding, st.setting, st.old
            );
        }
        for (what, list) in [
            ("needs a reboot, not made", &self.reboot),
            ("to do by hand, not made", &self.by_hand),
        ] {
            for l in list {
                let _ = writeln!(s, "{what}: {}: {}", l.finding, l.title);
                if let Some(c) = &l.command {
                    let _ = writeln!(s, "    {c}");
                }
            }
        }
        if dry_run && !self.steps.is_empty() {
            s.push_str("dry run: nothing was changed; --yes applies\n");
        }
        s
    }
}

/// A value as apply and revert print it: an empty one as `""`.
pub fn shown(value: &str) -> &str {
    if value.is_empty() {
        "\"\""
    } else {
        value
    }
}

/// Makes every step of `plan`, or none: writes the revert file at
/// `revert_file` first (it must not exist yet: an older one may hold the
/// only record of the original values), calls `log` after each change, and
/// on a failed write restores what was changed, in reverse order.
pub fn apply(
    plan: &Plan,
    settings: &mut dyn Settings,
    revert_file: &Path,
    host: &str,
    log: &mut dyn FnMut(&Step),
) -> Result<(), ApplyError> {
    if plan.steps.is_empty() {
        return Ok(());
    }
    RevertFile::new(host, plan.steps.clone())
        .create(revert_file)
        .map_err(|why| ApplyError::RevertFile {
            path: revert_file.to_path_buf(),
            why,
        })?;
    for (i, step) in plan.steps.iter().enumerate() {
        if let Err(why) = settings.write(&step.setting, &step.new) {
            let (restored, unrestored) = roll_back(&plan.steps[..i], step, settings);
            return Err(ApplyError::Write(Box::new(WriteFailure {
                finding: step.finding.clone(),
                failed: step.setting.clone(),
                value: step.new.clone(),
                why,
                restored,
                unrestored,
                revert_file: revert_file.to_path_buf(),
            })));
        }
        log(step);
    }
    Ok(())
}

/// Restores `done` in reverse order, after `failed` itself if its failed
/// write moved it anyway.
fn roll_back(
    done: &[Step],
    failed: &Step,
    settings: &mut dyn Settings,
) -> (Vec<Setting>, Vec<(Setting, String)>) {
    let moved = !matches!(settings.read(&failed.setting), Ok(v) if same_value(&v, &failed.old));
    let (mut restored, mut unrestored) = (Vec::new(), Vec::new());
    for step in moved.then_some(failed).into_iter().chain(done.iter().rev()) {
        match settings.write(&step.setting, &step.old) {
            Ok(()) => restored.push(step.setting.clone()),
            Err(why) => unrestored.push((step.setting.clone(), why)),
        }
    }
    (restored, unrestored)
}

#[cfg(test)]
mod tests {
    use super::settings::memory::Memory;
    use super::*;
    use crate::model::Change;

    fn sysctl(name: &str) -> Setting {
        Setting::Sysctl { name: name.into() }
    }

    fn finding(id: &str, change: Option<(Setting, &str)>, needs_reboot: bool) -> Finding {
        Finding {
            id: id.into(),
            severity: Severity::Warning,
            title: format!("{id} title"),
            evidence: vec![],
            command: Some(format!("fix {id}")),
            why: String::new(),
            change: change.map(|(setting, value)| Change {
                setting,
                value: value.into(),
            }),
            needs_reboot,
        }
    }

    /// Three sysctls a, b, c at "1", each recommended "2".
    fn three() -> (Vec<Finding>, Memory) {
        let mut m = Memory::default();
        let mut findings = vec![];
        for n in ["a", "b", "c"] {
            m.values.insert(sysctl(n), "1".into());
            findings.push(finding(n, Some((sysctl(n), "2")), false));
        }
        (findings, m)
    }

    fn temp_revert_file(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("tgta-unit-{tag}-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn plan_splits_changes_from_settings_already_set_reboots_and_manual_work() {
        let (mut findings, mut m) = three();
        m.values.insert(sysctl("b"), "2".into());
        findings.push(finding("cmdline.isolcpus", Some((sysctl("x"), "1")), true));
        findings.push(finding("nic.firmware", None, false));
        let p = plan(&findings, &[], &m).unwrap();
        let ids = |steps: &[Step]| steps.iter().map(|s| s.finding.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&p.steps), ["a", "c"]);
        assert_eq!(
            (p.steps[0].old.as_str(), p.steps[0].new.as_str()),
            ("1", "2")
        );
        assert_eq!(ids(&p.already), ["b"]);
        assert_eq!(p.reboot[0].finding, "cmdline.isolcpus");
        assert_eq!(p.by_hand[0].finding, "nic.firmware");
        let text = p.describe(Path::new("/x/revert.json"), true);
        for want in [
            "would change 2 setting(s)",
            "a: sysctl a: 1 -> 2",
            "would write the revert file /x/revert.json first (`tollgate tune revert /x/revert.json` undoes",
            "already set: b",
            "needs a reboot, not made: cmdline.isolcpus",
            "    fix cmdline.isolcpus",
            "to do by hand, not made: nic.firmware",
            "--yes applies",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }

    #[test]
    fn only_picks_findings_and_names_an_unknown_one() {
        let (findings, m) = three();
        let p = plan(&findings, &["b".into()], &m).unwrap();
        assert_eq!(p.steps.len(), 1);
        let e = plan(&findings, &["nope".into()], &m)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--only nope") && e.contains("a, b, c"), "{e}");
    }

    #[test]
    fn two_findings_wanting_one_setting_differently_conflict() {
        let (mut findings, m) = three();
        findings.push(finding("a2", Some((sysctl("a"), "3")), false));
        let e = plan(&findings, &[], &m).unwrap_err().to_string();
        assert!(e.contains("findings a and a2 want sysctl a"), "{e}");
    }

    #[test]
    fn an_unreadable_setting_stops_the_plan() {
        let (mut findings, m) = three();
        findings.push(finding("gone", Some((sysctl("gone"), "1")), false));
        let e = plan(&findings, &[], &m).unwrap_err().to_string();
        assert!(e.contains("cannot read sysctl gone (for gone)"), "{e}");
    }

    #[test]
    fn apply_writes_the_revert_file_first_and_logs_each_change() {
        let (findings, mut m) = three();
        let file = temp_revert_file("first");
        m.must_exist = Some(file.clone());
        let p = plan(&findings, &[], &m).unwrap();
        let mut logged = vec![];
        apply(&p, &mut m, &file, "node1", &mut |s| {
            logged.push(s.finding.clone())
        })
        .unwrap();
        assert_eq!(logged, ["a", "b", "c"]);
        assert!(m.values.values().all(|v| v == "2"));
        let rf = RevertFile::load(&file).unwrap();
        assert_eq!((rf.host.as_str(), rf.changes), ("node1", p.steps.clone()));
        let e = apply(&p, &mut m, &file, "node1", &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("exists already"), "{e}");
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn a_failed_write_rolls_back_what_was_made_in_reverse_order() {
        let (findings, mut m) = three();
        m.refuse = Some(sysctl("c"));
        let file = temp_revert_file("rollback");
        let p = plan(&findings, &[], &m).unwrap();
        let mut logged = 0;
        let e = apply(&p, &mut m, &file, "node1", &mut |_| logged += 1).unwrap_err();
        let writes: Vec<String> = m.writes.iter().map(|(s, v)| format!("{s}={v}")).collect();
        assert_eq!(
            writes,
            [
                "sysctl a=2",
                "sysctl b=2",
                "sysctl c=2",
                "sysctl b=1",
                "sysctl a=1"
            ]
        );
        assert!(m.values.values().all(|v| v == "1"));
        assert_eq!(logged, 2);
        let e = e.to_string();
        assert!(
            e.contains("could not set sysctl c to \"2\" (for c): Invalid argument")
                && e.contains("rolled back, in reverse order: sysctl b, sysctl a"),
            "{e}"
        );
        std::fs::remove_file(&file).unwrap();
    }
}
