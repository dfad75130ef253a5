//! `tollgate bench sip --capacity`: the highest call rate each system
//! carries on this host with no failed call, setup p99 under a limit
//! (`--p99-limit-ms`, 20 by default) and SIPp achieving the offered rate. The search probes
//! from `--cps` upward, doubling while probes pass, then bisects between
//! the last pass and the first failure until they are within
//! [`RESOLUTION`] of each other; every probe is a full run (fresh system,
//! `--duration` seconds of load, idle wait) and every probe is kept.

use super::results::SipResult;
use crate::stamp::Stamp;

/// SIPp must achieve at least this share of the offered rate.
const ACHIEVED_SHARE: f64 = 0.97;
/// The search ends when pass and failure are this close (a share of the
/// passing rate).
const RESOLUTION: f64 = 0.10;

/// One probe and why it passed or failed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    pub cps: u32,
    /// The run; None when the run itself was refused (the error is in
    /// `failed_because`), as an overloaded system that never goes idle is.
    pub run: Option<SipResult>,
    pub passed: bool,
    /// Empty when it passed.
    pub failed_because: Vec<String>,
}

impl Probe {
    pub fn judge(run: SipResult, p99_limit_us: f64) -> Probe {
        let mut why = Vec::new();
        if run.failed > 0 {
            why.push(format!("{} failed calls", run.failed));
        }
        if run.setup_us_p99 >= p99_limit_us {
            why.push(format!(
                "setup p99 {:.0} µs over {p99_limit_us:.0}",
                run.setup_us_p99
            ));
        }
        let want = f64::from(run.cps_offered) * ACHIEVED_SHARE;
        if run.cps_achieved < want {
            why.push(format!(
                "achieved {:.1} of {} cps offered",
                run.cps_achieved, run.cps_offered
            ));
        }
        Probe {
            cps: run.cps_offered,
            passed: why.is_empty(),
            failed_because: why,
            run: Some(run),
        }
    }

    /// A probe whose run was refused.
    pub fn refused(cps: u32, error: &anyhow::Error) -> Probe {
        Probe {
            cps,
            run: None,
            passed: false,
            failed_because: vec![format!("run refused: {error:#}")],
        }
    }
}

/// One system's search.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Capacity {
    pub system: String,
    /// The highest passing rate (0: even the first probe failed).
    pub cps: u32,
    /// Every probe, in the order made.
    pub probes: Vec<Probe>,
}

/// Where the search goes next, from the probes so far.
pub struct Search {
    /// The highest rate that passed, and the lowest that failed.
    pass: u32,
    fail: Option<u32>,
    next: Option<u32>,
    max: u32,
}

impl Search {
    pub fn new(start: u32, max: u32) -> Search {
        Search {
            pass: 0,
            fail: None,
            next: Some(start.clamp(1, max)),
            max,
        }
    }

    /// The next rate to probe, or None when the search is done.
    pub fn next(&self) -> Option<u32> {
        self.next
    }

    pub fn record(&mut self, cps: u32, passed: bool) {
        if passed {
            self.pass = self.pass.max(cps);
        } else {
            self.fail = Some(self.fail.map_or(cps, |f| f.min(cps)));
        }
        self.next = match self.fail {
            None if self.pass >= self.max => None,
            None => Some((self.pass * 2).min(self.max)),
            Some(f) => {
                let gap = f.saturating_sub(self.pass);
                let close = f64::from(gap) <= f64::from(self.pass) * RESOLUTION || gap <= 1;
                (!close).then(|| self.pass + gap / 2)
            }
        };
    }

    pub fn found(&self) -> u32 {
        self.pass
    }
}

/// What `--capacity` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CapacityReport {
    pub stamp: Stamp,
    pub duration_s: u32,
    pub max_cps: u32,
    /// The pass criteria, in words.
    pub criteria: String,
    pub capacity: Vec<Capacity>,
}

impl CapacityReport {
    pub fn criteria(p99_limit_ms: u32) -> String {
        format!(
            "0 failed calls, setup p99 under {p99_limit_ms} ms, at least {:.0} % of the offered rate achieved",
            ACHIEVED_SHARE * 100.0
        )
    }

    pub fn print(&self) {
        println!("tollgate bench sip --capacity: {}", self.stamp);
        println!(
            "probes of {} s each, up to {} cps; a probe passes with {}",
            self.duration_s, self.max_cps, self.criteria
        );
        for c in &self.capacity {
            for p in &c.probes {
                let verdict = if p.passed {
                    "pass".to_string()
                } else {
                    p.failed_because.join("; ")
                };
                match &p.run {
                    Some(r) => println!(
                        "{:<9} {:>6} cps  achieved {:>8.1}  failed {:>5}  p99 {:>8.0} us  cpu {:.3} ms/call  {verdict}",
                        c.system, p.cps, r.cps_achieved, r.failed, r.setup_us_p99, r.cpu_ms_per_call
                    ),
                    None => println!("{:<9} {:>6} cps  {verdict}", c.system, p.cps),
                }
            }
            println!("{:<9} capacity {} cps", c.system, c.cps);
        }
        if let [t, k] = self.capacity.as_slice() {
            if k.cps > 0 {
                println!(
                    "capacity: {} carries {:.2}x the call rate of {}",
                    t.system,
                    f64::from(t.cps) / f64::from(k.cps),
                    k.system
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a system that passes up to `limit` cps.
    fn search(start: u32, max: u32, limit: u32) -> (u32, Vec<u32>) {
        let mut s = Search::new(start, max);
        let mut probes = Vec::new();
        while let Some(cps) = s.next() {
            assert!(probes.len() < 30, "the search ends: {probes:?}");
            probes.push(cps);
            s.record(cps, cps <= limit);
        }
        (s.found(), probes)
    }

    #[test]
    fn doubles_then_bisects_to_within_a_tenth() {
        let (found, probes) = search(100, 10_000, 730);
        assert_eq!(&probes[..4], &[100, 200, 400, 800]);
        assert!(
            found <= 730 && f64::from(730 - found) <= 0.1 * f64::from(found),
            "{found}"
        );
    }

    #[test]
    fn a_failing_first_probe_searches_downward() {
        let (found, probes) = search(400, 10_000, 90);
        assert_eq!(probes[0], 400);
        assert!((80..=90).contains(&found), "{found} from {probes:?}");
    }

    #[test]
    fn stops_at_the_ceiling_and_at_nothing() {
        assert_eq!(search(100, 1000, 5000).0, 1000);
        assert_eq!(search(100, 1000, 0).0, 0);
    }
}
