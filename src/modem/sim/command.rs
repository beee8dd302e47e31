//! AT command lines as the modem understands them (TS 27.007, TS 27.005 PDU mode).

/// `AT+CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>`: how new SMS and status reports are announced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Cnmi {
    /// 0–3: when indications are buffered; checked and echoed by `AT+CNMI?`, not acted on.
    pub mode: u8,
    /// 0 store silently, 1 store and `+CMTI`, 2 route as `+CMT` without storing.
    pub mt: u8,
    /// Cell broadcast indications: only 0 (none) is accepted.
    pub bm: u8,
    /// 0 no status reports, 1 `+CDS`, 2 store and `+CDSI`.
    pub ds: u8,
    /// 0–1: whether buffered indications are flushed or cleared; echoed, not acted on.
    pub bfr: u8,
}

/// A command line the simulated modem understands, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    Attention,
    Echo(bool),
    Reset,
    ErrorMode(u8),
    PinQuery,
    PinEnter(String),
    FormatQuery,
    Format(u8),
    CentreQuery,
    CentreSet(String),
    IndicationsQuery,
    Indications(Cnmi),
    Registration,
    /// `AT+CREG=<n>`: whether registration changes are reported unasked.
    RegistrationMode(u8),
    Signal,
    Manufacturer,
    Model,
    Serial,
    /// `AT+CMGS=<TPDU octets>`.
    Send(usize),
    /// `AT+CPMS="<mem1>"[,...]`: the memory that reads, deletes and lists use.
    SelectMemory(String),
    MemoryQuery,
    Read(u16),
    Delete {
        index: u16,
        flag: u8,
    },
    /// `AT+CMGL=<stat>`, 4 (all) when left out.
    List(u8),
}

/// Whether a line is meant for the modem at all: a real one ignores anything else.
pub(super) fn is_command(line: &str) -> bool {
    line.get(..2).is_some_and(|prefix| prefix.eq_ignore_ascii_case("AT"))
}

/// The command of a line that `is_command`; None for what this modem does not know.
pub(super) fn parse(line: &str) -> Option<Command> {
    let body = line.get(2..)?.trim_end();
    let split = body.find(['=', '?']).unwrap_or(body.len());
    let (name, rest) = body.split_at(split);
    let name = name.to_ascii_uppercase();
    let command = match (name.as_str(), rest) {
        ("", "") => Command::Attention,
        ("E" | "E0", "") => Command::Echo(false),
        ("E1", "") => Command::Echo(true),
        ("Z" | "Z0", "") => Command::Reset,
        ("+CMEE", _) => Command::ErrorMode(single(rest)?),
        ("+CPIN", "?") => Command::PinQuery,
        ("+CPIN", _) => Command::PinEnter(unquote(arguments(rest)?.first()?).to_string()),
        ("+CMGF", "?") => Command::FormatQuery,
        ("+CMGF", _) => Command::Format(single(rest)?),
        ("+CSCA", "?") => Command::CentreQuery,
        ("+CSCA", _) => Command::CentreSet(unquote(arguments(rest)?.first()?).to_string()),
        ("+CNMI", "?") => Command::IndicationsQuery,
        ("+CNMI", _) => Command::Indications(cnmi(rest)?),
        ("+CREG", "?") => Command::Registration,
        ("+CREG", _) => Command::RegistrationMode(single(rest)?),
        ("+CSQ", "") => Command::Signal,
        ("+CGMI" | "+GMI", "") => Command::Manufacturer,
        ("+CGMM" | "+GMM", "") => Command::Model,
        ("+CGSN" | "+GSN", "") => Command::Serial,
        ("+CMGS", _) => Command::Send(single(rest)?),
        ("+CPMS", "?") => Command::MemoryQuery,
        ("+CPMS", _) => Command::SelectMemory(unquote(arguments(rest)?.first()?).to_ascii_uppercase()),
        ("+CMGR", _) => Command::Read(single(rest)?),
        ("+CMGD", _) => delete(rest)?,
        ("+CMGL", "") => Command::List(4),
        ("+CMGL", _) => Command::List(single(rest)?),
        _ => return None,
    };
    Some(command)
}

/// The comma-separated values after "=".
fn arguments(rest: &str) -> Option<Vec<&str>> {
    Some(rest.strip_prefix('=')?.split(',').map(str::trim).collect())
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

fn single<T: std::str::FromStr>(rest: &str) -> Option<T> {
    match arguments(rest)?.as_slice() {
        [value] => value.parse().ok(),
        _ => None,
    }
}

/// Omitted values (`2,1,,1`) and trailing ones count as 0, as TS 27.005 §3.4.1 allows.
fn cnmi(rest: &str) -> Option<Cnmi> {
    let values = arguments(rest)?;
    if values.len() > 5 {
        return None;
    }
    let value = |i: usize| match values.get(i).copied().unwrap_or("") {
        "" => Some(0),
        v => v.parse::<u8>().ok(),
    };
    Some(Cnmi {
        mode: value(0)?,
        mt: value(1)?,
        bm: value(2)?,
        ds: value(3)?,
        bfr: value(4)?,
    })
}

fn delete(rest: &str) -> Option<Command> {
    let values = arguments(rest)?;
    let (index, flag) = match values.as_slice() {
        [index] => (index.parse().ok()?, 0),
        [index, flag] => (index.parse().ok()?, flag.parse().ok()?),
        _ => return None,
    };
    Some(Command::Delete { index, flag })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_as_a_modem_reads_them() {
        let cnmi = Cnmi {
            mode: 2,
            mt: 1,
            bm: 0,
            ds: 1,
            bfr: 0,
        };
        let table = [
            ("AT", Some(Command::Attention)),
            ("at", Some(Command::Attention)),
            ("ATE0", Some(Command::Echo(false))),
            ("ATE1", Some(Command::Echo(true))),
            ("ATZ", Some(Command::Reset)),
            ("AT+CMEE=1", Some(Command::ErrorMode(1))),
            ("AT+CPIN?", Some(Command::PinQuery)),
            ("AT+CPIN=\"1234\"", Some(Command::PinEnter("1234".into()))),
            ("AT+CPIN=1234", Some(Command::PinEnter("1234".into()))),
            ("at+cmgf=0", Some(Command::Format(0))),
            (
                "AT+CSCA=\"+447785016005\",145",
                Some(Command::CentreSet("+447785016005".into())),
            ),
            ("AT+CNMI=2,1,0,1,0", Some(Command::Indications(cnmi))),
            ("AT+CNMI=2,1,,1", Some(Command::Indications(cnmi))),
            ("AT+CMGS=23", Some(Command::Send(23))),
            ("AT+CREG=0", Some(Command::RegistrationMode(0))),
            ("AT+CMGR=3", Some(Command::Read(3))),
            ("AT+CMGD=1,4", Some(Command::Delete { index: 1, flag: 4 })),
            ("AT+CPMS=\"SR\"", Some(Command::SelectMemory("SR".into()))),
            ("at+cpms=\"sm\",\"sm\",\"sm\"", Some(Command::SelectMemory("SM".into()))),
            ("AT+CMGL", Some(Command::List(4))),
            ("AT+CMGS", None),
            ("AT+CMGS=x", None),
            ("AT+CNMI=1,2,3,4,5,6", None),
            ("AT+CMEE=1,2", None),
            ("ATD+4412345;", None),
        ];
        for (line, command) in table {
            assert!(is_command(line));
            assert_eq!(parse(line), command, "{line}");
        }
        assert!(!is_command("hello"));
    }
}
