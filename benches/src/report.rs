//! Results: per metric, the runs of each terminator; rendered as a Markdown table of medians
//! and ratios, and as a hand-written SVG bar chart.

use std::fmt::Write as _;

use crate::stats::{fmt_num, median, ratio};

/// Whether smaller or larger numbers are better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// CPU, memory, latency.
    Lower,
    /// Rates and throughput.
    Higher,
}

/// One measured quantity across terminators.
#[derive(Debug, Clone)]
pub struct Metric {
    /// What was measured, e.g. "full handshake: CPU per connection".
    pub name: String,
    /// The unit, e.g. "µs".
    pub unit: String,
    /// Which direction is better.
    pub better: Better,
    /// The target, in words (e.g. "≤ 0.5 × hitch"), if the issue set one.
    pub target: Option<String>,
    /// Values of each run, per terminator label, in the order first seen.
    pub runs: Vec<(String, Vec<f64>)>,
}

impl Metric {
    /// A metric with no runs yet.
    pub fn new(name: &str, unit: &str, better: Better, target: Option<&str>) -> Metric {
        Metric {
            name: name.to_string(),
            unit: unit.to_string(),
            better,
            target: target.map(str::to_string),
            runs: Vec::new(),
        }
    }

    /// Records one run's value for `label`.
    pub fn add(&mut self, label: &str, value: f64) {
        match self.runs.iter_mut().find(|(l, _)| l == label) {
            Some((_, v)) => v.push(value),
            None => self.runs.push((label.to_string(), vec![value])),
        }
    }

    /// The median for the first label that starts with `prefix` (e.g. "hitch").
    pub fn median_of(&self, prefix: &str) -> Option<f64> {
        self.runs
            .iter()
            .find(|(l, _)| l.starts_with(prefix))
            .and_then(|(_, v)| median(v))
    }
}

/// All metrics of a run, in order.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// The metrics, in the order they were measured.
    pub metrics: Vec<Metric>,
    /// Notes printed under the table (errors, resumption rates, checks).
    pub notes: Vec<String>,
}

impl Report {
    /// The metric named `name`, created on first use.
    pub fn metric(
        &mut self,
        name: &str,
        unit: &str,
        better: Better,
        target: Option<&str>,
    ) -> &mut Metric {
        if let Some(i) = self.metrics.iter().position(|m| m.name == name) {
            return &mut self.metrics[i];
        }
        self.metrics.push(Metric::new(name, unit, better, target));
        self.metrics.last_mut().expect("just pushed")
    }

    /// The Markdown table: one row per metric, the median of each terminator, stud's ratio to
    /// hitch and to haproxy, the target.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        s.push_str("| scenario | unit | stud | hitch | haproxy | stud/hitch | stud/haproxy | target | runs |\n");
        s.push_str("|---|---|---:|---:|---:|---:|---:|---|---:|\n");
        for m in &self.metrics {
            let cell = |p: &str| {
                m.runs
                    .iter()
                    .find(|(l, _)| l.starts_with(p))
                    .and_then(|(l, v)| {
                        median(v).map(|x| {
                            // Name the configuration when it is not the pinned single-worker one.
                            let extra = if l.contains("-n 1")
                                || l.contains("=1")
                                || l.ends_with(" 1")
                                || l == p
                            {
                                String::new()
                            } else {
                                format!(" ({l})")
                            };
                            format!("{}{extra}", fmt_num(x))
                        })
                    })
                    .unwrap_or_else(|| "–".into())
            };
            let stud = m.median_of("stud");
            let r = |p: &str| {
                stud.zip(m.median_of(p))
                    .and_then(|(a, b)| ratio(a, b))
                    .map_or("–".into(), |x| format!("{x:.2}"))
            };
            let runs = m.runs.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.name,
                m.unit,
                cell("stud"),
                cell("hitch"),
                cell("haproxy"),
                r("hitch"),
                r("haproxy"),
                m.target.as_deref().unwrap_or(""),
                runs
            );
        }
        for n in &self.notes {
            let _ = writeln!(s, "\n- {n}");
        }
        s
    }

    /// A bar chart, one group of bars per metric, each bar's length relative to the largest
    /// median in its group.
    pub fn svg(&self, title: &str) -> String {
        const W: f64 = 760.0;
        const LABEL: f64 = 300.0;
        const BAR_H: f64 = 16.0;
        const GAP: f64 = 26.0;
        let colors = [
            ("stud", "#1f77b4"),
            ("hitch", "#ff7f0e"),
            ("haproxy", "#6a3d9a"),
        ];
        let mut body = String::new();
        let mut y = 50.0;
        // Shares (core busy, resumed) and rates explain the other rows; the chart keeps the
        // costs.
        for m in self
            .metrics
            .iter()
            .filter(|m| m.unit != "%" && m.unit != "conn/s")
        {
            let meds: Vec<(&str, &str, f64)> = colors
                .iter()
                .filter_map(|(p, c)| m.median_of(p).map(|v| (*p, *c, v)))
                .collect();
            let max = meds.iter().map(|x| x.2).fold(0.0_f64, f64::max);
            if meds.is_empty() || max <= 0.0 {
                continue;
            }
            let better = match m.better {
                Better::Lower => "lower is better",
                Better::Higher => "higher is better",
            };
            let _ = writeln!(
                body,
                r#"<text x="10" y="{:.1}" font-weight="bold">{} ({}, {})</text>"#,
                y,
                esc(&m.name),
                esc(&m.unit),
                better
            );
            y += 6.0;
            for (p, c, v) in &meds {
                let len = (W - LABEL - 80.0) * v / max;
                let _ = writeln!(
                    body,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{p}</text><rect x="{LABEL}" y="{:.1}" width="{len:.1}" height="{BAR_H}" fill="{c}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                    LABEL - 8.0,
                    y + BAR_H - 4.0,
                    y,
                    LABEL + len + 6.0,
                    y + BAR_H - 4.0,
                    fmt_num(*v)
                );
                y += BAR_H + 4.0;
            }
            y += GAP;
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"10\" y=\"24\" font-size=\"15\" font-weight=\"bold\">{}</text>\n{body}</svg>\n",
            y + 10.0,
            esc(title)
        )
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One line of progress while a run goes on.
pub fn progress_line(metric: &str, label: &str, value: f64, unit: &str) -> String {
    format!("  {metric:<44} {label:<22} {:>10} {unit}", fmt_num(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut r = Report::default();
        let m = r.metric(
            "full handshake CPU",
            "µs/conn",
            Better::Lower,
            Some("≤ 0.5 × hitch"),
        );
        for v in [200.0, 210.0, 190.0] {
            m.add("stud -n 1", v);
        }
        for v in [600.0, 580.0, 620.0] {
            m.add("hitch --workers=1", v);
        }
        m.add("haproxy nbthread 1", 500.0);
        r.metric("idle RSS", "KiB/conn", Better::Lower, None)
            .add("stud -n 2", 8.0);
        r.notes.push("a note".into());
        r
    }

    #[test]
    fn table_has_medians_ratios_and_targets() {
        let md = sample().markdown();
        assert!(md.contains("| full handshake CPU | µs/conn | 200 | 600 | 500 | 0.33 | 0.40 | ≤ 0.5 × hitch | 3 |"), "{md}");
        assert!(
            md.contains("| idle RSS | KiB/conn | 8.00 (stud -n 2) | – | – | – | – |  | 1 |"),
            "{md}"
        );
        assert!(md.contains("- a note"));
    }

    #[test]
    fn chart_scales_bars_to_the_largest_median() {
        let svg = sample().svg("t <1>");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("t &lt;1&gt;"));
        // hitch has the largest median: the full bar width (760 - 300 - 80).
        assert!(svg.contains(r#"width="380.0""#), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 1 + 4);
    }
}
