//! What `tollgate bench sip` reports: every run of every system, the median
//! and spread (min to max) of the main figures, the stamp, and what was
//! counted; printed as a table and written as JSON.

use crate::report::Spread;
use crate::stamp::Stamp;

/// One run of one system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SipResult {
    pub system: String,
    /// 1-based, in the order the runs were made.
    pub run: u32,
    pub cps_offered: u32,
    /// Calls SIPp was told to offer (`--cps` x `--duration`).
    pub offered: u64,
    pub ok: u64,
    pub failed: u64,
    pub retransmissions: u64,
    /// SIPp's first to last call, seconds.
    pub elapsed_s: f64,
    pub cps_achieved: f64,
    /// Calls whose INVITE and 200 the capture matched (the latency sample).
    pub setup_measured: u64,
    pub setup_us_p50: f64,
    pub setup_us_p90: f64,
    pub setup_us_p99: f64,
    pub setup_us_max: f64,
    /// Datagrams the capture could not use, and packets the kernel dropped from it.
    pub capture_unusable: u64,
    pub capture_drops: u64,
    /// The system's CPU over the whole window, and per completed call.
    pub cpu_ms: f64,
    pub cpu_ms_per_call: f64,
    /// Of `cpu_ms`, what the system spent after SIPp finished, until idle.
    pub trailing_cpu_ms: f64,
    /// Seconds from SIPp's exit until the system was idle.
    pub idle_after_s: f64,
}

/// Every run of one system and the spread of its main figures (None with
/// no runs).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SystemRuns {
    pub system: String,
    /// Which CPU time was counted, and until when, in words.
    pub counted: String,
    pub runs: Vec<SipResult>,
    pub cps_achieved: Option<Spread>,
    pub setup_us_p50: Option<Spread>,
    pub setup_us_p90: Option<Spread>,
    pub setup_us_p99: Option<Spread>,
    pub cpu_ms_per_call: Option<Spread>,
}

impl SystemRuns {
    pub(super) fn of(system: &str, runs: Vec<SipResult>) -> SystemRuns {
        let spread = |f: fn(&SipResult) -> f64| Spread::of(runs.iter().map(f).collect());
        SystemRuns {
            system: system.into(),
            counted: counted(system).into(),
            cps_achieved: spread(|r| r.cps_achieved),
            setup_us_p50: spread(|r| r.setup_us_p50),
            setup_us_p90: spread(|r| r.setup_us_p90),
            setup_us_p99: spread(|r| r.setup_us_p99),
            cpu_ms_per_call: spread(|r| r.cpu_ms_per_call),
            runs,
        }
    }
}

/// What `tollgate bench sip` reports, as printed and as written to `--out`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SipReport {
    pub stamp: Stamp,
    pub cps: u32,
    pub duration_s: u32,
    pub runs_per_system: u32,
    /// How setup latency was measured.
    pub setup_latency: String,
    pub systems: Vec<SystemRuns>,
}

pub(super) const SETUP_LATENCY: &str =
    "from the packets: the UAC's first INVITE to the first 200 for it \
reaching the UAC, matched by Call-ID, kernel receive timestamps of an AF_PACKET capture on lo";

fn counted(system: &str) -> &'static str {
    if system == "tollgate" {
        "CPU time of `tollgate run` and its data-plane child (each process's CPU clock: \
         every thread it had, exited ones included), \
         from before the first INVITE until the node was idle: no call left in NG `list`, \
         the CDR spool drained into its SQLite sink, and under 2 % of a core for 0.5 s"
    } else {
        "CPU time of every Kamailio process and of rtpengine (each process's CPU clock: \
         every thread it had, exited ones included), \
         from before the first INVITE until they were idle: no call left in rtpengine's NG \
         `list`, and under 2 % of a core for 0.5 s (this Kamailio writes no CDRs)"
    }
}

impl SipReport {
    /// The table: every run, then each system's median and spread.
    pub fn print(&self) {
        println!("tollgate bench sip: {}", self.stamp);
        println!(
            "{} cps for {} s, {} run(s) per system; setup latency {}",
            self.cps, self.duration_s, self.runs_per_system, self.setup_latency
        );
        println!(
            "{:<9} {:>6} {:>11} {:>6} {:>6} {:>7} {:>13} {:>13} {:>13} {:>13} {:>11}",
            "system",
            "run",
            "achieved",
            "ok",
            "failed",
            "retrans",
            "p50 us",
            "p90 us",
            "p99 us",
            "cpu ms/call",
            "trailing ms"
        );
        for s in &self.systems {
            for r in &s.runs {
                println!(
                    "{:<9} {:>6} {:>11.1} {:>6} {:>6} {:>7} {:>13.0} {:>13.0} {:>13.0} {:>13.3} {:>11.1}",
                    r.system,
                    r.run,
                    r.cps_achieved,
                    r.ok,
                    r.failed,
                    r.retransmissions,
                    r.setup_us_p50,
                    r.setup_us_p90,
                    r.setup_us_p99,
                    r.cpu_ms_per_call,
                    r.trailing_cpu_ms
                );
            }
            let m = |x: &Option<Spread>| x.map_or(f64::NAN, |x| x.median);
            println!(
                "{:<9} {:>6} {:>11.1} {:>6} {:>6} {:>7} {:>13.0} {:>13.0} {:>13.0} {:>13.3}",
                s.system,
                "median",
                m(&s.cps_achieved),
                "",
                "",
                "",
                m(&s.setup_us_p50),
                m(&s.setup_us_p90),
                m(&s.setup_us_p99),
                m(&s.cpu_ms_per_call)
            );
            let r = |x: &Option<Spread>, digits: usize| {
                x.map_or("-".into(), |x| {
                    format!("{:.*}-{:.*}", digits, x.min, digits, x.max)
                })
            };
            println!(
                "{:<9} {:>6} {:>11} {:>6} {:>6} {:>7} {:>13} {:>13} {:>13} {:>13}",
                "",
                "spread",
                r(&s.cps_achieved, 1),
                "",
                "",
                "",
                r(&s.setup_us_p50, 0),
                r(&s.setup_us_p90, 0),
                r(&s.setup_us_p99, 0),
                r(&s.cpu_ms_per_call, 3)
            );
            println!("  {}: {}", s.system, s.counted);
        }
        if let [t, k] = self.systems.as_slice() {
            let median = |s: &SystemRuns| s.cpu_ms_per_call.map_or(0.0, |x| x.median);
            let (t, k) = (median(t), median(k));
            if t > 0.0 && k > 0.0 {
                println!(
                    "median CPU per call: Kamailio+rtpengine / Tollgate = {:.2}; Tollgate costs {:.2}x Kamailio+rtpengine's",
                    k / t,
                    t / k
                );
            }
        }
    }
}
