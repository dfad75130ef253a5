//! `tollgate cdr export`: CDRs read back from an SQL sink, written as CSV
//! (one row per call, the columns billing systems import, then what the A
//! and B legs' parties reported in RTCP) or JSON lines (the whole CDR,
//! legs included).

use crate::model::Cdr;
use chrono::{DateTime, SecondsFormat, Utc};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

const CSV_COLUMNS: [&str; 26] = [
    "call_id",
    "from_number",
    "to_number",
    "status",
    "start_time",
    "answer_time",
    "end_time",
    "duration",
    "billable_seconds",
    "sip_code",
    "sip_reason",
    "hangup_by",
    "source_ip",
    "destination_ip",
    "transport",
    "trunk",
    "gateway",
    "carrier",
    "org_id",
    "recording_url",
    "a_remote_lost",
    "a_remote_jitter_ms",
    "a_rtt_ms",
    "b_remote_lost",
    "b_remote_jitter_ms",
    "b_rtt_ms",
];

fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// A leg's RTCP figures: remote loss, remote jitter, round trip.
fn rtcp_of(c: &Cdr, leg: &str) -> [String; 3] {
    let l = c.legs.iter().find(|l| l.leg == leg);
    [
        opt(&l.and_then(|l| l.remote_lost)),
        opt(&l.and_then(|l| l.remote_jitter_ms)),
        opt(&l.and_then(|l| l.rtt_ms)),
    ]
}

fn csv_row(c: &Cdr) -> [String; 26] {
    let [al, aj, ar] = rtcp_of(c, "a");
    let [bl, bj, br] = rtcp_of(c, "b");
    [
        c.call_id.clone(),
        c.from_number.clone(),
        c.to_number.clone(),
        c.disposition().as_str().into(),
        time(c.start_ms),
        c.answer_ms.map(time).unwrap_or_default(),
        time(c.end_ms),
        c.duration_secs().to_string(),
        c.billable_secs().to_string(),
        opt(&c.sip_code),
        opt(&c.sip_reason),
        c.hangup_by
            .map(|h| h.as_str().to_string())
            .unwrap_or_default(),
        opt(&c.source_ip),
        opt(&c.destination_ip),
        opt(&c.transport),
        opt(&c.trunk),
        opt(&c.gateway),
        opt(&c.carrier),
        opt(&c.org_id),
        opt(&c.recording_url),
        al,
        aj,
        ar,
        bl,
        bj,
        br,
    ]
}

/// Writes CDRs one at a time in `format` (CSV gets its header first).
pub struct Writer<W: Write> {
    format: Format,
    csv: Option<csv::Writer<W>>,
    raw: Option<W>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, format: Format) -> std::io::Result<Self> {
        Ok(match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(CSV_COLUMNS)?;
                Writer {
                    format,
                    csv: Some(w),
                    raw: None,
                }
            }
            Format::Json => Writer {
                format,
                csv: None,
                raw: Some(out),
            },
        })
    }

    pub fn write(&mut self, c: &Cdr) -> std::io::Result<()> {
        match (self.format, &mut self.csv, &mut self.raw) {
            (Format::Csv, Some(w), _) => w.write_record(csv_row(c)).map_err(std::io::Error::other),
            (_, _, Some(w)) => {
                serde_json::to_writer(&mut *w, c)?;
                w.write_all(b"\n")
            }
            _ => unreachable!("a writer has its output"),
        }
    }

    pub fn finish(self) -> std::io::Result<()> {
        match (self.csv, self.raw) {
            (Some(mut w), _) => w.flush(),
            (_, Some(mut w)) => w.flush(),
            _ => Ok(()),
        }
    }
}

/// A `--since` value: RFC 3339, or a date meaning its UTC midnight.
pub fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| format!("--since {s:?}: expected a date (2026-11-01) or RFC 3339 time (2026-11-01T08:00:00Z)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_header_and_one_row_per_call() {
        let c = Cdr {
            call_id: "c,1".into(),
            from_number: "100".into(),
            start_ms: 1_700_000_000_000,
            answer_ms: Some(1_700_000_001_000),
            end_ms: 1_700_000_031_500,
            legs: vec![crate::model::Leg {
                leg: "a".into(),
                remote_lost: Some(-1),
                remote_jitter_ms: Some(2.5),
                rtt_ms: Some(41.25),
                ..Default::default()
            }],
            ..Cdr::default()
        };
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out, Format::Csv).unwrap();
        w.write(&c).unwrap();
        w.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("call_id,from_number,to_number,status,start_time"));
        assert!(
            lines[1].starts_with("\"c,1\",100,,failed,2023-11-14T22:13:20.000Z,2023-11-14T22:13:21.000Z,2023-11-14T22:13:51.500Z,31,31,"),
            "{}",
            lines[1]
        );
        assert!(lines[0].ends_with(
            ",a_remote_lost,a_remote_jitter_ms,a_rtt_ms,b_remote_lost,b_remote_jitter_ms,b_rtt_ms"
        ));
        assert!(lines[1].ends_with(",-1,2.5,41.25,,,"), "{}", lines[1]);
    }

    #[test]
    fn since_takes_dates_and_times() {
        assert_eq!(
            parse_since("2026-11-01").unwrap().to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert!(parse_since("2026-11-01T08:00:00+01:00").is_ok());
        assert!(parse_since("yesterday")
            .unwrap_err()
            .contains("expected a date"));
    }
}
