//! The Prometheus text exposition format, version 0.0.4: each metric family once with
//! its `# HELP` and `# TYPE`, then its samples, label values escaped.

use std::fmt::{self, Write as _};

/// What a metric family measures over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (until a restart).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
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
        let mut line = String::new();
        if !labels.is_empty() {
            line.push('{');
            for (index, (name, value)) in labels.iter().enumerate() {
                debug_assert!(valid_name(name) && !name.contains(':'), "{name}");
                if index > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{name}=\"{}\"", escape(value, true));
            }
            line.push('}');
        }
        let _ = write!(line, " {value}");
        self.samples.push(line);
        self
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
