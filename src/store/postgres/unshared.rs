//! Copies of the pure helpers the SQLite files keep private, until the facade makes
//! them reachable: then each `unshared::<file>::<item>` becomes
//! `crate::store::<file>::<item>` and this file goes.

pub(super) mod dispatch {
    /// `crate::store::dispatch::LANE`.
    pub(in crate::store) const LANE: usize = 3;

    /// `crate::store::dispatch::lanes`.
    pub(in crate::store) fn lanes(prefix: &str) -> (Vec<String>, (String, String)) {
        let range = (prefix.to_string(), successor(prefix));
        if prefix.len() >= LANE {
            return (vec![prefix[..LANE].to_string()], range);
        }
        let mut lanes = vec![prefix.to_string()];
        while lanes[0].len() < LANE {
            lanes = lanes
                .iter()
                .flat_map(|lane| ('0'..='9').map(move |digit| format!("{lane}{digit}")))
                .collect();
        }
        (lanes, range)
    }

    /// `crate::store::dispatch::successor`.
    fn successor(prefix: &str) -> String {
        let mut bytes = prefix.as_bytes().to_vec();
        if let Some(last) = bytes.last_mut() {
            *last += 1;
        }
        String::from_utf8(bytes).unwrap_or_default()
    }

    /// `crate::store::dispatch::covering`.
    pub(in crate::store) fn covering(prefixes: &[String]) -> Option<Vec<&str>> {
        if prefixes.iter().any(|p| p == "+") {
            return None;
        }
        let mut kept: Vec<&str> = prefixes
            .iter()
            .map(String::as_str)
            .filter(|p| !prefixes.iter().any(|q| q.len() < p.len() && p.starts_with(q.as_str())))
            .collect();
        kept.sort_unstable();
        kept.dedup();
        Some(kept)
    }
}

pub(super) mod routing {
    use crate::store::routing::names;

    /// `crate::store::routing::refused_and_tried`.
    pub(in crate::store) fn refused_and_tried(list: &str) -> (Vec<String>, Vec<String>) {
        let (refused, tried): (Vec<String>, Vec<String>) = names(list).into_iter().partition(|n| n.starts_with('!'));
        (refused.into_iter().map(|n| n[1..].to_string()).collect(), tried)
    }
}

pub(super) mod dsn {
    use crate::store::DsnAction;

    /// `crate::store::dsn::DSN_EVENT`.
    pub(in crate::store) const DSN_EVENT: &str = "dsn";

    /// `DsnAction::parse`.
    pub(in crate::store) fn parse(s: &str) -> DsnAction {
        match s {
            "delivered" => DsnAction::Delivered,
            "relayed" => DsnAction::Relayed,
            "delayed" => DsnAction::Delayed,
            _ => DsnAction::Failed,
        }
    }

    /// `DsnAction::notify_keyword`.
    pub(in crate::store) fn notify_keyword(action: DsnAction) -> &'static str {
        match action {
            DsnAction::Delivered | DsnAction::Relayed => "SUCCESS",
            DsnAction::Failed => "FAILURE",
            DsnAction::Delayed => "DELAY",
        }
    }

    /// `DsnAction::superseded_by`.
    pub(in crate::store) fn superseded_by(action: DsnAction) -> &'static str {
        match action {
            DsnAction::Delivered | DsnAction::Relayed => "'delivered', 'relayed'",
            DsnAction::Failed => "'failed'",
            DsnAction::Delayed => "'delayed'",
        }
    }
}

pub(super) mod sending {
    use std::time::Duration;

    /// `crate::store::sending::elapsed`.
    pub(in crate::store) fn elapsed(from: i64, to: i64) -> Duration {
        Duration::from_millis(u64::try_from(to - from).unwrap_or(0))
    }
}
