//! The Prometheus text exposition format, version 0.0.4: each metric family once with
//! its `# HELP` and `# TYPE`, then its samples, label values escaped.

use std::fmt::{self, Write as _};

use crate::metrics::Snapshot;

/// What a metric family measures over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (until a restart).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted in buckets, with their sum and count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A scrape being written: the metric families in the order they were first named.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
}

/// One metric family: a name, what it is, and its samples.
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    /// Each sample's line without the name: labels, space, value.
    samples: Vec<String>,
}

impl Exposition {
    /// The family `name`, named now if it is new; a family is written with its `# HELP`
    /// and `# TYPE` lines even when it has no sample. Naming it again adds to it.
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &'static str) -> &mut Family {
        debug_assert!(valid_name(name), "{name}");
        let index = match self.families.iter().position(|f| f.name == name) {
            Some(index) => index,
            None => {
                self.families.push(Family {
                    name,
                    kind,
                    help,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        let family = &mut self.families[index];
        debug_assert!(
            family.kind == kind && family.help == help,
            "{name} named twice differently"
        );
        family
    }
}

impl Family {
    /// Adds a sample with `labels` (name, value; the names are ours, the values any
    /// text).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: u64) -> &mut Family {
        self.line("", labels, None, &value.to_string())
    }

    /// Adds a sample whose value may be negative or fractional (a signal in dBm, an age
    /// in seconds).
    pub fn sample_float(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Family {
        self.line("", labels, None, &float(value))
    }

    /// Adds a histogram's `_bucket` lines (one per bound, then `+Inf`), its `_sum` and
    /// its `_count`.
    pub fn histogram(&mut self, labels: &[(&str, &str)], histogram: &Snapshot) -> &mut Family {
        debug_assert_eq!(self.kind, Kind::Histogram, "{}", self.name);
        for (bound, count) in &histogram.buckets {
            self.line("_bucket", labels, Some(&float(*bound)), &count.to_string());
        }
        self.line("_bucket", labels, Some("+Inf"), &histogram.count.to_string());
        self.line("_sum", labels, None, &float(histogram.sum));
        self.line("_count", labels, None, &histogram.count.to_string())
    }

    fn line(&mut self, suffix: &str, labels: &[(&str, &str)], le: Option<&str>, value: &str) -> &mut Family {
        let mut line = suffix.to_string();
        let labels = labels.iter().copied().chain(le.map(|le| ("le", le)));
        // Whether a label was written, not whether the line holds a brace: the suffix
        // cannot, but the test must not depend on what the line holds.
        let mut labelled = false;
        for (name, value) in labels {
            debug_assert!(valid_name(name) && !name.contains(':'), "{name}");
            line.push(if labelled { ',' } else { '{' });
            labelled = true;
            let _ = write!(line, "{name}=\"{}\"", escape(value, true));
        }
        if labelled {
            line.push('}');
        }
        let _ = write!(line, " {value}");
        self.samples.push(line);
        self
    }
}

/// A float as the text format writes it: `1`, `0.25`, `-73`, `+Inf`.
fn float(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if value.is_nan() {
        "NaN".to_string()
    } else {
        value.to_string()
    }
}

/// The text of the scrape, one line per `# HELP`, `# TYPE` and sample.
impl fmt::Display for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for family in &self.families {
            let name = family.name;
            writeln!(f, "# HELP {name} {}", escape(family.help, false))?;
            writeln!(f, "# TYPE {name} {}", family.kind.as_str())?;
            for sample in &family.samples {
                writeln!(f, "{name}{sample}")?;
            }
        }
        Ok(())
    }
}

/// A metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':');
    first && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Backslash and line feed escaped, and the double quote too in a label value (`quote`):
/// whatever a modem or peer is called, the line stays one line and parses.
fn escape(text: &str, quote: bool) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '"' if quote => escaped.push_str("\\\""),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_once_with_their_samples() {
        let mut exposition = Exposition::default();
        exposition
            .family("smsgw_requests", Kind::Gauge, "Requests in the store by state.")
            .sample(&[("state", "queued")], 2)
            .sample(&[("state", "sent")], 0);
        exposition.family("smsgw_smtp_mails_total", Kind::Counter, "Mails accepted and stored.");
        exposition
            .family("smsgw_requests", Kind::Gauge, "Requests in the store by state.")
            .sample(&[("state", "failed")], 1);
        exposition
            .family("smsgw_smtp_mails_total", Kind::Counter, "Mails accepted and stored.")
            .sample(&[], 3);
        exposition.family("smsgw_peer_up", Kind::Gauge, "1 when the peer's status answered.");
        assert_eq!(
            exposition.to_string(),
            "# HELP smsgw_requests Requests in the store by state.\n\
             # TYPE smsgw_requests gauge\n\
             smsgw_requests{state=\"queued\"} 2\n\
             smsgw_requests{state=\"sent\"} 0\n\
             smsgw_requests{state=\"failed\"} 1\n\
             # HELP smsgw_smtp_mails_total Mails accepted and stored.\n\
             # TYPE smsgw_smtp_mails_total counter\n\
             smsgw_smtp_mails_total 3\n\
             # HELP smsgw_peer_up 1 when the peer's status answered.\n\
             # TYPE smsgw_peer_up gauge\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let table = [
            ("sim0", r#"m{modem="sim0"} 1"#),
            (r#"sim "0""#, r#"m{modem="sim \"0\""} 1"#),
            (r"C:\modems\0", r#"m{modem="C:\\modems\\0"} 1"#),
            ("two\nlines", r#"m{modem="two\nlines"} 1"#),
            ("\\\"\n", r#"m{modem="\\\"\n"} 1"#),
            ("café", r#"m{modem="café"} 1"#),
            ("", r#"m{modem=""} 1"#),
        ];
        for (modem, line) in table {
            let mut exposition = Exposition::default();
            exposition.family("m", Kind::Gauge, "h").sample(&[("modem", modem)], 1);
            let text = exposition.to_string();
            assert_eq!(text.lines().nth(2), Some(line), "{modem:?}");
            assert_eq!(text.lines().count(), 3, "{modem:?}: one line per sample");
        }
    }

    #[test]
    fn several_labels_and_an_instance_name_needing_escapes() {
        let mut exposition = Exposition::default();
        exposition
            .family("smsgw_peer_up", Kind::Gauge, "1 when the peer's status answered.")
            .sample(&[("peer", "fr \"paris\""), ("instance", "uk\\1\nb")], 1);
        assert_eq!(
            exposition.to_string().lines().last(),
            Some(r#"smsgw_peer_up{peer="fr \"paris\"",instance="uk\\1\nb"} 1"#)
        );
    }

    #[test]
    fn help_escapes_backslash_and_line_feed_but_not_quotes() {
        let mut exposition = Exposition::default();
        exposition.family("m", Kind::Counter, "a \"b\" \\ c\nd");
        assert_eq!(
            exposition.to_string(),
            "# HELP m a \"b\" \\\\ c\\nd\n# TYPE m counter\n"
        );
    }

    #[test]
    fn a_histogram_has_cumulative_buckets_a_sum_and_a_count() {
        let mut exposition = Exposition::default();
        let snapshot = Snapshot {
            buckets: vec![(0.5, 1), (2.0, 3)],
            sum: 4.25,
            count: 4,
        };
        exposition
            .family("smsgw_x_seconds", Kind::Histogram, "h")
            .histogram(&[("modem", "m\"x")], &snapshot);
        assert_eq!(
            exposition.to_string(),
            "# HELP smsgw_x_seconds h\n\
             # TYPE smsgw_x_seconds histogram\n\
             smsgw_x_seconds_bucket{modem=\"m\\\"x\",le=\"0.5\"} 1\n\
             smsgw_x_seconds_bucket{modem=\"m\\\"x\",le=\"2\"} 3\n\
             smsgw_x_seconds_bucket{modem=\"m\\\"x\",le=\"+Inf\"} 4\n\
             smsgw_x_seconds_sum{modem=\"m\\\"x\"} 4.25\n\
             smsgw_x_seconds_count{modem=\"m\\\"x\"} 4\n"
        );
    }

    #[test]
    fn floats() {
        let mut exposition = Exposition::default();
        let family = exposition.family("m", Kind::Gauge, "h");
        for value in [-73.0, 0.25, 3.0, f64::INFINITY] {
            family.sample_float(&[], value);
        }
        let text = exposition.to_string();
        let values: Vec<&str> = text.lines().skip(2).map(|l| l.split(' ').nth(1).unwrap()).collect();
        assert_eq!(values, ["-73", "0.25", "3", "+Inf"]);
    }

    #[test]
    fn names() {
        for (name, valid) in [
            ("smsgw_requests", true),
            ("_x:y", true),
            ("a1", true),
            ("1a", false),
            ("a-b", false),
            ("", false),
        ] {
            assert_eq!(valid_name(name), valid, "{name:?}");
        }
    }
}
