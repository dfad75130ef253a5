//! What of this node's keyspace Redis must be told next (sans-IO): every
//! live call entry as the journal last flushed it, and the changes since
//! the last write that went through. A write that failed (Redis down, a
//! lost connection) makes the next one a resync of everything live, so a
//! Redis that came back empty, or lost some writes, is caught up whole.

use crate::journal::Change;
use std::collections::BTreeMap;

/// One write for Redis: replace the keyspace with `entries`, or apply
/// them to it. A `None` value deletes its key.
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    Resync(Vec<(String, String)>),
    Delta(Vec<(String, Option<String>)>),
}

#[derive(Debug, Default)]
pub struct Mirror {
    live: BTreeMap<String, String>,
    pending: BTreeMap<String, Option<String>>,
    resync: bool,
}

impl Mirror {
    /// A mirror of `seed` (the calls restored at start), whose first write
    /// is a resync.
    pub fn new(seed: impl IntoIterator<Item = (String, String)>) -> Mirror {
        Mirror {
            live: seed.into_iter().collect(),
            pending: BTreeMap::new(),
            resync: true,
        }
    }

    /// Takes in one flushed journal batch.
    pub fn apply(&mut self, changes: Vec<Change>) {
        for (key, value) in changes {
            let value = value.map(|v| v.to_string());
            match &value {
                Some(v) => self.live.insert(key.clone(), v.clone()),
                None => self.live.remove(&key),
            };
            if !self.resync {
                self.pending.insert(key, value);
            }
        }
    }

    /// The next write, if anything is to be written; what it carries is
    /// taken (call [`Mirror::failed`] when it does not go through).
    pub fn batch(&mut self) -> Option<Batch> {
        if std::mem::take(&mut self.resync) {
            self.pending.clear();
            let all = self.live.iter().map(|(k, v)| (k.clone(), v.clone()));
            return Some(Batch::Resync(all.collect()));
        }
        if self.pending.is_empty() {
            return None;
        }
        Some(Batch::Delta(
            std::mem::take(&mut self.pending).into_iter().collect(),
        ))
    }

    /// The last batch was not written: the next one resyncs.
    pub fn failed(&mut self) {
        self.resync = true;
        self.pending.clear();
    }

    pub fn live(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(k: &str, v: serde_json::Value) -> Change {
        (k.to_string(), Some(v))
    }

    #[test]
    fn the_first_write_is_a_resync_then_only_what_changed_goes() {
        let mut m = Mirror::new([("media/a".to_string(), "1".to_string())]);
        m.apply(vec![put("sip/b", json!(2))]);
        assert_eq!(
            m.batch(),
            Some(Batch::Resync(vec![
                ("media/a".into(), "1".into()),
                ("sip/b".into(), "2".into())
            ]))
        );
        assert_eq!(m.batch(), None);
        m.apply(vec![put("sip/b", json!(3)), put("sip/b", json!(4))]);
        m.apply(vec![("media/a".to_string(), None)]);
        assert_eq!(
            m.batch(),
            Some(Batch::Delta(vec![
                ("media/a".into(), None),
                ("sip/b".into(), Some("4".into()))
            ]))
        );
        assert_eq!(m.live(), 1);
    }

    #[test]
    fn a_failed_write_is_caught_up_by_a_resync_of_what_is_live_then() {
        let mut m = Mirror::new([]);
        m.batch();
        m.apply(vec![put("media/a", json!(1)), put("media/b", json!(1))]);
        assert!(matches!(m.batch(), Some(Batch::Delta(d)) if d.len() == 2));
        m.failed();
        // While Redis is away calls end and others start.
        m.apply(vec![
            ("media/a".to_string(), None),
            put("media/c", json!(5)),
        ]);
        assert_eq!(
            m.batch(),
            Some(Batch::Resync(vec![
                ("media/b".into(), "1".into()),
                ("media/c".into(), "5".into())
            ]))
        );
        assert_eq!(m.batch(), None);
    }
}
