//! What the server answers (RFC 5321 §4.2): a three-digit code with its meaning typed,
//! and the text of one or more lines; and the parser that reads such a reply line by
//! line.

use std::fmt;

/// Most lines in one reply: a server sending more is broken.
pub const MAX_LINES: usize = 100;

/// The first digit of a reply code: how the command fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// 2yz: done.
    PositiveCompletion,
    /// 3yz: go on (354 after DATA).
    PositiveIntermediate,
    /// 4yz: not now; the same command may succeed later.
    TransientNegative,
    /// 5yz: no, and asking again will not help.
    PermanentNegative,
}

/// A reply code, 200 to 599.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(u16);

impl Code {
    /// 421: the server is closing the connection (RFC 5321 §3.8).
    pub const CLOSING: Code = Code(421);

    /// The code, if `value` is one a server may send: 2xx to 5xx.
    pub fn new(value: u16) -> Option<Code> {
        (200..600).contains(&value).then_some(Code(value))
    }

    /// Its first digit.
    pub fn severity(self) -> Severity {
        match self.0 / 100 {
            2 => Severity::PositiveCompletion,
            3 => Severity::PositiveIntermediate,
            4 => Severity::TransientNegative,
            _ => Severity::PermanentNegative,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A whole reply: its code (the last line's) and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The code.
    pub code: Code,
    /// The text after the code of each line, without the separator and the line end.
    pub lines: Vec<String>,
}

impl Response {
    /// 5yz: refused for good.
    pub fn is_permanent(&self) -> bool {
        self.code.severity() == Severity::PermanentNegative
    }
}

/// The code and the lines on one line, as log and error messages quote a reply.
impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" "))
    }
}

/// The extensions a server names in its EHLO reply (RFC 5321 §4.1.1.1): the first word
/// of each line after the greeting one. Empty after HELO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions(Vec<String>);

impl Extensions {
    /// The extensions of a positive EHLO reply.
    pub fn of(ehlo: &Response) -> Extensions {
        let keywords = ehlo.lines.iter().skip(1).filter_map(|l| l.split_whitespace().next());
        Extensions(keywords.map(str::to_string).collect())
    }

    /// Whether the server offers `keyword` (case-insensitive).
    pub fn has(&self, keyword: &str) -> bool {
        self.0.iter().any(|e| e.eq_ignore_ascii_case(keyword))
    }
}

/// A reply that cannot be read: the conversation is out of step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line that does not start with a reply code.
    #[error("answered something that is not SMTP: {0:?}")]
    NotSmtp(String),
    /// More than [`MAX_LINES`] lines in one reply.
    #[error("answered more lines than any server would")]
    TooManyLines,
}

/// Reads a reply line by line: `250-` lines go on, a `250 ` (or bare `250`) line ends it.
#[derive(Debug, Default)]
pub struct Parser {
    lines: Vec<String>,
}

impl Parser {
    /// Takes one line as read, line end included or not; the whole reply once its last
    /// line is in, and then the parser is ready for the next one.
    pub fn line(&mut self, raw: &[u8]) -> Result<Option<Response>, ParseError> {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_end();
        let digits = line.as_bytes().get(..3).filter(|d| d.iter().all(u8::is_ascii_digit));
        let code = digits
            .map(|d| d.iter().fold(0, |code, digit| code * 10 + u16::from(digit - b'0')))
            .and_then(Code::new);
        let Some(code) = code else {
            return Err(ParseError::NotSmtp(line.to_string()));
        };
        self.lines.push(line.get(4..).unwrap_or("").to_string());
        if line.as_bytes().get(3) != Some(&b'-') {
            let lines = std::mem::take(&mut self.lines);
            return Ok(Some(Response { code, lines }));
        }
        if self.lines.len() >= MAX_LINES {
            return Err(ParseError::TooManyLines);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Option<Response>, ParseError>;

    fn parse(lines: &[&str]) -> Parsed {
        let mut parser = Parser::default();
        let mut last = Ok(None);
        for line in lines {
            last = parser.line(line.as_bytes());
        }
        last
    }

    fn response(code: u16, lines: &[&str]) -> Option<Response> {
        Some(Response {
            code: Code::new(code).unwrap(),
            lines: lines.iter().map(|l| l.to_string()).collect(),
        })
    }

    #[test]
    fn replies_of_one_and_several_lines() {
        let table: [(&[&str], Parsed); 8] = [
            (&["250 OK\r\n"], Ok(response(250, &["OK"]))),
            (&["250\r\n"], Ok(response(250, &[""]))),
            (&["354 go on"], Ok(response(354, &["go on"]))),
            (
                &["250-gw.example.com\r\n", "250-8BITMIME\r\n", "250 AUTH PLAIN\r\n"],
                Ok(response(250, &["gw.example.com", "8BITMIME", "AUTH PLAIN"])),
            ),
            (&["250-first\r\n"], Ok(None)),
            (&["hello\r\n"], Err(ParseError::NotSmtp("hello".into()))),
            (&["199 too low\r\n"], Err(ParseError::NotSmtp("199 too low".into()))),
            (&["+25 sign\r\n"], Err(ParseError::NotSmtp("+25 sign".into()))),
        ];
        for (lines, expected) in table {
            assert_eq!(parse(lines), expected, "{lines:?}");
        }
    }

    #[test]
    fn the_last_line_gives_the_code_and_the_parser_starts_again() {
        let mut parser = Parser::default();
        assert_eq!(parser.line(b"250-a\r\n"), Ok(None));
        assert_eq!(parser.line(b"451 b\r\n"), Ok(response(451, &["a", "b"])));
        assert_eq!(parser.line(b"221 bye\r\n"), Ok(response(221, &["bye"])));
    }

    #[test]
    fn a_reply_without_end_is_cut_off() {
        let mut parser = Parser::default();
        for _ in 1..MAX_LINES {
            assert_eq!(parser.line(b"250-more\r\n"), Ok(None));
        }
        assert_eq!(parser.line(b"250-more\r\n"), Err(ParseError::TooManyLines));
        let mut parser = Parser::default();
        for _ in 1..MAX_LINES {
            assert_eq!(parser.line(b"250-more\r\n"), Ok(None));
        }
        assert!(matches!(parser.line(b"250 last\r\n"), Ok(Some(r)) if r.lines.len() == MAX_LINES));
    }

    #[test]
    fn codes_are_typed() {
        let table = [
            (220, Severity::PositiveCompletion),
            (214, Severity::PositiveCompletion),
            (354, Severity::PositiveIntermediate),
            (421, Severity::TransientNegative),
            (451, Severity::TransientNegative),
            (500, Severity::PermanentNegative),
            (550, Severity::PermanentNegative),
        ];
        for (value, severity) in table {
            let code = Code::new(value).unwrap();
            let response = Response { code, lines: vec![] };
            assert_eq!(code.severity(), severity, "{value}");
            assert_eq!(response.is_permanent(), value >= 500, "{value}");
            assert_eq!(code.to_string(), value.to_string());
        }
        assert_eq!(Code::new(199), None);
        assert_eq!(Code::new(600), None);
        assert_eq!(Code::CLOSING, Code::new(421).unwrap());
    }

    #[test]
    fn extensions_are_the_first_words_after_the_greeting_line() {
        let ehlo = response(
            250,
            &["gw.example.com greets you", "8BITMIME", "AUTH PLAIN LOGIN", "starttls"],
        )
        .unwrap();
        let extensions = Extensions::of(&ehlo);
        assert!(extensions.has("8BITMIME") && extensions.has("AUTH") && extensions.has("STARTTLS"));
        assert!(!extensions.has("gw.example.com") && !extensions.has("PLAIN"));
        assert!(!Extensions::default().has("STARTTLS"));
    }
}
