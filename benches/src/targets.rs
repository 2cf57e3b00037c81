//! The target table: one row per target the project set itself, each with the value measured
//! in this run, the target, and whether it was met — so one run shows at a glance what holds.
//!
//! A target reads the medians of the [`Report`]'s metrics by name; a metric the run did not
//! measure (left out by `--only`, or its tool missing) gives "not measured", never a verdict.

use std::fmt::Write as _;

use crate::report::Report;
use crate::stats::fmt_num;

/// How a target is judged.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// stud's median of `metric` is at most `max` × hitch's median of the same metric.
    VsHitch {
        /// The metric's name in the report.
        metric: String,
        /// The largest ratio that meets the target.
        max: f64,
    },
    /// stud's median of `metric` is at most `max`.
    AtMost {
        /// The metric's name in the report.
        metric: String,
        /// The largest value that meets the target.
        max: f64,
    },
    /// stud's median of `cheaper` is below stud's median of `dearer`.
    Below {
        /// The metric that must be smaller.
        cheaper: String,
        /// The metric it is compared with.
        dearer: String,
    },
}

/// One target: what it is about, in words, and how it is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The row's name (the client profile and load regime in it where they apply).
    pub what: String,
    /// The rule.
    pub rule: Rule,
}

/// Whether a target holds in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The measured value meets the target.
    Met,
    /// It does not.
    Missed,
    /// The run did not measure what the target needs.
    NotMeasured,
}

impl Verdict {
    /// The word in the table.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// One row of the target table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The target's name.
    pub what: String,
    /// The measured value, with what it was computed from.
    pub measured: String,
    /// The target, in words.
    pub target: String,
    /// Met, missed or not measured.
    pub verdict: Verdict,
}

fn stud(report: &Report, metric: &str) -> Option<(f64, String)> {
    let m = report.metrics.iter().find(|m| m.name == metric)?;
    Some((m.median_of("stud")?, m.unit.clone()))
}

fn hitch(report: &Report, metric: &str) -> Option<f64> {
    report
        .metrics
        .iter()
        .find(|m| m.name == metric)?
        .median_of("hitch")
}

/// Judges one target against the report.
pub fn evaluate(report: &Report, t: &Target) -> Row {
    let (measured, target, verdict) = match &t.rule {
        Rule::VsHitch { metric, max } => {
            let target = format!("≤ {max} × hitch");
            match (stud(report, metric), hitch(report, metric)) {
                (Some((s, unit)), Some(h)) if h > 0.0 && s.is_finite() => {
                    let r = s / h;
                    (
                        format!(
                            "{r:.2} × (stud {} {unit}, hitch {} {unit})",
                            fmt_num(s),
                            fmt_num(h)
                        ),
                        target,
                        if r <= *max {
                            Verdict::Met
                        } else {
                            Verdict::Missed
                        },
                    )
                }
                _ => ("–".into(), target, Verdict::NotMeasured),
            }
        }
        Rule::AtMost { metric, max } => match stud(report, metric) {
            Some((s, unit)) if s.is_finite() => (
                format!("{} {unit}", fmt_num(s)),
                format!("≤ {} {unit}", fmt_num(*max)),
                if s <= *max {
                    Verdict::Met
                } else {
                    Verdict::Missed
                },
            ),
            _ => (
                "–".into(),
                format!("≤ {}", fmt_num(*max)),
                Verdict::NotMeasured,
            ),
        },
        Rule::Below { cheaper, dearer } => {
            let target = "resumed < full (stud)".to_string();
            match (stud(report, cheaper), stud(report, dearer)) {
                (Some((a, unit)), Some((b, _))) if a.is_finite() && b > 0.0 => (
                    format!("{} vs {} {unit} ({:.2} ×)", fmt_num(a), fmt_num(b), a / b),
                    target,
                    if a < b { Verdict::Met } else { Verdict::Missed },
                ),
                _ => ("–".into(), target, Verdict::NotMeasured),
            }
        }
    };
    Row {
        what: t.what.clone(),
        measured,
        target,
        verdict,
    }
}

/// The table of every target, and a closing line counting met, missed and not measured.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from("| target | measured | target | verdict |\n|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            r.what,
            r.measured,
            r.target,
            r.verdict.word()
        );
    }
    let count = |v| rows.iter().filter(|r| r.verdict == v).count();
    let _ = writeln!(
        s,
        "\n{} met, {} missed, {} not measured.",
        count(Verdict::Met),
        count(Verdict::Missed),
        count(Verdict::NotMeasured)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Better;

    fn report() -> Report {
        let mut r = Report::default();
        let m = r.metric("full CPU", "µs", Better::Lower, None);
        for v in [400.0, 420.0, 380.0] {
            m.add("stud -n 1", v);
        }
        for v in [1000.0, 900.0, 1100.0] {
            m.add("hitch --workers=1", v);
        }
        let m = r.metric("resumed CPU", "µs", Better::Lower, None);
        m.add("stud -n 1", 450.0);
        m.add("hitch --workers=1", 900.0);
        r.metric("syscalls", "calls", Better::Lower, None)
            .add("stud -n 1", 38.5);
        r
    }

    fn vs(metric: &str, max: f64) -> Target {
        Target {
            what: metric.into(),
            rule: Rule::VsHitch {
                metric: metric.into(),
                max,
            },
        }
    }

    #[test]
    fn a_ratio_to_hitch_is_judged_on_medians() {
        let row = evaluate(&report(), &vs("full CPU", 0.45));
        assert_eq!(row.verdict, Verdict::Met);
        assert_eq!(row.measured, "0.40 × (stud 400 µs, hitch 1000 µs)");
        assert_eq!(row.target, "≤ 0.45 × hitch");
        let row = evaluate(&report(), &vs("resumed CPU", 0.45));
        assert_eq!(row.verdict, Verdict::Missed);
        assert!(row.measured.starts_with("0.50 ×"), "{}", row.measured);
    }

    #[test]
    fn absolute_and_relative_targets() {
        let at_most = |max| Target {
            what: "s".into(),
            rule: Rule::AtMost {
                metric: "syscalls".into(),
                max,
            },
        };
        let row = evaluate(&report(), &at_most(40.0));
        assert_eq!(
            (row.measured.as_str(), row.verdict),
            ("38.5 calls", Verdict::Met)
        );
        assert_eq!(row.target, "≤ 40.0 calls");
        assert_eq!(evaluate(&report(), &at_most(30.0)).verdict, Verdict::Missed);
        let below = Target {
            what: "r".into(),
            rule: Rule::Below {
                cheaper: "resumed CPU".into(),
                dearer: "full CPU".into(),
            },
        };
        let row = evaluate(&report(), &below);
        assert_eq!(row.verdict, Verdict::Missed);
        assert_eq!(row.measured, "450 vs 400 µs (1.12 ×)");
    }

    #[test]
    fn what_was_not_measured_gets_no_verdict() {
        assert_eq!(
            evaluate(&report(), &vs("bulk", 0.6)).verdict,
            Verdict::NotMeasured
        );
        // stud alone: no ratio to hitch.
        assert_eq!(
            evaluate(&report(), &vs("syscalls", 0.6)).verdict,
            Verdict::NotMeasured
        );
    }

    #[test]
    fn the_table_has_a_row_per_target_and_a_tally() {
        let rows: Vec<Row> = [vs("full CPU", 0.45), vs("resumed CPU", 0.45), vs("x", 1.0)]
            .iter()
            .map(|t| evaluate(&report(), t))
            .collect();
        let md = markdown(&rows);
        assert!(md.starts_with("| target | measured | target | verdict |\n|---|---|---|---|\n"));
        assert!(md
            .contains("| full CPU | 0.40 × (stud 400 µs, hitch 1000 µs) | ≤ 0.45 × hitch | met |"));
        assert!(md.contains("| resumed CPU | 0.50 × (stud 450 µs, hitch 900 µs) | ≤ 0.45 × hitch | **missed** |"), "{md}");
        assert!(md.contains("| x | – | ≤ 1 × hitch | not measured |"));
        assert!(md.ends_with("1 met, 1 missed, 1 not measured.\n"));
    }
}
