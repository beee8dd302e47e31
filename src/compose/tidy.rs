//! Plain text → SMS text: what a person reading a phone does not need is
//! dropped (signature, quoted reply, invisible characters, wasted space).

/// Verbs that end a reply's attribution line ("On … Paul wrote:",
/// "Le … a écrit :", "Am … schrieb …:"), in lower case.
const ATTRIBUTION_VERBS: &[&str] = &[
    "wrote",
    "écrit",
    "schrieb",
    "escribió",
    "scritto",
    "escreveu",
    "schreef",
];

/// Words that begin an attribution that a mail client may wrap over two lines.
const ATTRIBUTION_OPENERS: &[&str] = &["On ", "Le ", "Am ", "El ", "Il ", "Em ", "Op "];

/// The subject as one line with whitespace folded.
pub(super) fn one_line(text: &str) -> String {
    let visible: String = text.chars().filter(|&c| !is_invisible(c)).collect();
    visible.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The body without signature and quoted reply, with whitespace folded.
pub(super) fn body(text: &str) -> String {
    let text = visible_text(text);
    let lines: Vec<&str> = text.lines().collect();
    let lines = without_quotes(before_signature(&lines));
    fold_lines(&lines)
}

/// Characters that take room in an SMS (and can force the UCS-2 alphabet)
/// while showing nothing: control characters, zero-width spaces, BOMs, soft
/// hyphens (HTML mails are full of them). Joiners stay: emoji need them.
fn is_invisible(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{200B}' | '\u{2060}' | '\u{FEFF}' | '\u{AD}')
}

fn visible_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|&c| !is_invisible(c))
        .collect()
}

/// Everything before the signature separator: `-- ` (RFC 3676), also seen
/// as `--` once editors trim trailing spaces, or Outlook's "Original
/// Message" line, under which the whole previous mail follows unquoted.
fn before_signature<'l, 'a>(lines: &'l [&'a str]) -> &'l [&'a str] {
    let end = (0..lines.len())
        .find(|&at| {
            let line = lines[at].trim_end();
            line == "--" || is_original_message_line(line) || starts_outlook_header(&lines[at..])
        })
        .unwrap_or(lines.len());
    &lines[..end]
}

/// Outlook's reply header, under which the previous mail follows unquoted: a rule of
/// underscores before `From:`, or `From:` followed by `Sent:` (or `Date:`).
fn starts_outlook_header(lines: &[&str]) -> bool {
    let field = |line: Option<&&str>, name: &str| {
        line.is_some_and(|l| {
            l.trim_start()
                .get(..name.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(name))
        })
    };
    let first = lines[0].trim();
    let rule = first.len() >= 10 && first.chars().all(|c| c == '_');
    let next = lines[1..].iter().find(|l| !l.trim().is_empty());
    (rule && field(next, "From:"))
        || (field(Some(&lines[0]), "From:") && (field(lines.get(1), "Sent:") || field(lines.get(1), "Date:")))
}

fn is_original_message_line(line: &str) -> bool {
    let words = line.trim().trim_matches('-').trim();
    line.trim().starts_with("---") && words.eq_ignore_ascii_case("original message")
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// The lines without quoted reply blocks and the attribution line that
/// introduces each of them.
fn without_quotes<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    let mut kept = Vec::with_capacity(lines.len());
    let mut in_quote = false;
    for &line in lines {
        let quoted = is_quoted(line);
        if quoted && !in_quote {
            drop_attribution(&mut kept);
        }
        in_quote = quoted;
        // Runs of blank lines are kept as one, so that looking back for the
        // attribution stays short whatever the input.
        let repeated_blank = line.trim().is_empty() && kept.last().is_some_and(|l: &&str| l.trim().is_empty());
        if !quoted && !repeated_blank {
            kept.push(line);
        }
    }
    kept
}

/// Removes the last non-blank line if it is an attribution, with the line
/// before it when the attribution was wrapped ("On Mon, … Paul <" /
/// "paul@example.com> wrote:").
fn drop_attribution(kept: &mut Vec<&str>) {
    let Some(last) = kept.iter().rposition(|line| !line.trim().is_empty()) else {
        return;
    };
    let line = kept[last].trim();
    let lower = line.to_lowercase();
    if !line.ends_with(':') || !ATTRIBUTION_VERBS.iter().any(|verb| lower.contains(verb)) {
        return;
    }
    let opens = |line: &str| ATTRIBUTION_OPENERS.iter().any(|o| line.trim().starts_with(o));
    let wrapped = last > 0 && !opens(line) && opens(kept[last - 1]);
    kept.truncate(if wrapped { last - 1 } else { last });
}

/// Runs of spaces and tabs → one space, lines trimmed, at most one blank line
/// in a row, none at the start or end.
fn fold_lines(lines: &[&str]) -> String {
    let mut folded = String::new();
    let mut blank_pending = false;
    for line in lines {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank_pending = !folded.is_empty();
            continue;
        }
        if !folded.is_empty() {
            folded.push_str(if blank_pending { "\n\n" } else { "\n" });
        }
        folded.push_str(&line);
        blank_pending = false;
    }
    folded
}
