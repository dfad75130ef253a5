//! How long recordings are kept: policies per org and kind (the defaults:
//! recordings 90 days, voicemail 30), applied when a recording is archived
//! (its row's `retention_until`), and the purge that deletes objects and
//! rows past it. A purge deletes a recording's objects before its row, so a
//! crash in between leaves the row, and the next purge finishes the job;
//! deleting what is already gone is not an error, so purges repeat safely.

use crate::catalog::{Catalog, CatalogError, RecordingRow};
use crate::meta::Kind;
use crate::store::{Store, StoreError, AUDIO_OBJECT};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One policy: `org` (any when omitted) and `kind` keep `days`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub kind: Kind,
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub recording_days: u32,
    pub voicemail_days: u32,
    pub policies: Vec<Policy>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            recording_days: 90,
            voicemail_days: 30,
            policies: Vec::new(),
        }
    }
}

impl Retention {
    /// Days kept: the org's policy for the kind, else the kind's default.
    pub fn days(&self, org: Option<&str>, kind: Kind) -> u32 {
        let policy = |want: Option<&str>| {
            self.policies
                .iter()
                .find(|p| p.kind == kind && p.org.as_deref() == want)
                .map(|p| p.days)
        };
        org.and_then(|o| policy(Some(o)))
            .or_else(|| policy(None))
            .unwrap_or(match kind {
                Kind::Recording => self.recording_days,
                Kind::Voicemail => self.voicemail_days,
            })
    }

    pub fn until(&self, org: Option<&str>, kind: Kind, started: DateTime<Utc>) -> DateTime<Utc> {
        started + chrono::Duration::days(i64::from(self.days(org, kind)))
    }

    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        for (i, p) in self.policies.iter().enumerate() {
            let same = |q: &Policy| q.org == p.org && q.kind == p.kind;
            if self.policies[..i].iter().any(same) {
                errs.push(format!(
                    "archive.retention.policies[{i}]: a second policy for org {:?}, kind {:?}",
                    p.org, p.kind
                ));
            }
        }
        errs
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a purge found past retention and, when applied, deleted.
#[derive(Debug, Default, Serialize)]
pub struct PurgeReport {
    pub expired: Vec<RecordingRow>,
    pub objects_deleted: usize,
    pub rows_deleted: usize,
}

/// Finds recordings past retention at `now`; with `apply`, deletes their
/// objects and then their rows.
pub async fn purge(
    catalog: &Catalog,
    store: &Store,
    now: DateTime<Utc>,
    apply: bool,
) -> Result<PurgeReport, PurgeError> {
    let mut report = PurgeReport {
        expired: catalog.expired(now).await?,
        ..Default::default()
    };
    if !apply {
        return Ok(report);
    }
    for row in &report.expired {
        let prefix = row
            .object_key
            .strip_suffix(AUDIO_OBJECT)
            .unwrap_or(&row.object_key);
        report.objects_deleted += store.delete_prefix(prefix).await?;
        catalog.delete(&row.recording_id).await?;
        report.rows_deleted += 1;
        tracing::info!(recording_id = %row.recording_id, call_id = %row.call_id, "recording purged");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_most_specific_policy_wins() {
        let r = Retention {
            policies: vec![
                Policy {
                    org: None,
                    kind: Kind::Recording,
                    days: 60,
                },
                Policy {
                    org: Some("acme".into()),
                    kind: Kind::Recording,
                    days: 7,
                },
            ],
            ..Retention::default()
        };
        assert_eq!(r.days(Some("acme"), Kind::Recording), 7);
        assert_eq!(r.days(Some("other"), Kind::Recording), 60);
        assert_eq!(r.days(None, Kind::Recording), 60);
        assert_eq!(r.days(Some("acme"), Kind::Voicemail), 30);
        assert_eq!(Retention::default().days(None, Kind::Recording), 90);
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            r.until(Some("acme"), Kind::Recording, t),
            t + chrono::Duration::days(7)
        );
        let dup = Retention {
            policies: vec![r.policies[1].clone(), r.policies[1].clone()],
            ..Retention::default()
        };
        assert_eq!(dup.validate().len(), 1);
    }
}
