//! The least-cost plan (README, "Cluster"): a pure function of the number,
//! the cluster view and the request's trace.
//!
//! cost(S→X, N) = tariff(X, N) + link_cost(S, X) + workload(X), where tariff is the
//! longest matching prefix of the cheapest working modem of X, and workload is the
//! requests waiting per working modem × `routing.workload_cost`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::e164::E164;

/// One modem's tariff: cost of one SMS part by E.164 prefix.
#[derive(Debug, Clone, Default)]
pub struct Tariff {
    prefixes: HashMap<String, f64>,
    longest: usize,
}

impl Tariff {
    /// A tariff of (E.164 prefix, cost of one part) entries.
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a str, f64)>) -> Tariff {
        let prefixes: HashMap<String, f64> = entries.into_iter().map(|(p, c)| (p.to_string(), c)).collect();
        let longest = prefixes.keys().map(String::len).max().unwrap_or(0);
        Tariff { prefixes, longest }
    }

    /// The cost of the longest prefix of `number` this tariff has: at most 16 lookups
    /// however many prefixes it holds.
    pub fn lookup(&self, number: &str) -> Option<f64> {
        (1..=self.longest.min(number.len()))
            .rev()
            .filter_map(|len| number.get(..len))
            .find_map(|prefix| self.prefixes.get(prefix).copied())
    }
}

/// What routing knows of one instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Its `instance.name`: how plans, traces and refusals name it.
    pub name: String,
    /// This instance itself (link cost 0, never forwarded to).
    pub local: bool,
    /// Its status answered at the last poll (always true for this instance).
    pub up: bool,
    /// Cost of forwarding one request to it (`peer.link_cost`); ignored for this instance.
    pub link_cost: f64,
    /// The tariffs of its working modems.
    pub modems: Vec<Tariff>,
    /// The tariffs of its modems that are down now: what it could send once they are back.
    pub resting: Vec<Tariff>,
    /// Requests waiting for its modems.
    pub queued: u64,
}

/// Every instance as this one sees it.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// This instance and every peer, in config order.
    pub instances: Vec<Instance>,
    /// Cost added per request waiting, per working modem (`routing.workload_cost`).
    pub workload_cost: f64,
    /// Instances a request may pass through (`routing.max_hops`); past that only this one sends.
    pub max_hops: usize,
}

/// An instance that can send the number, and what sending it there costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The instance's name.
    pub name: String,
    /// This instance: sending here means no forwarding.
    pub local: bool,
    /// Cost of one part by the cheapest working modem's longest matching prefix.
    pub tariff: f64,
    /// Link cost of forwarding there; 0 for this instance.
    pub link: f64,
    /// Cost of the requests already waiting there.
    pub workload: f64,
    /// `tariff + link + workload`: what the plan ranks by.
    pub total: f64,
}

/// Why an instance is not a candidate for the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its status did not answer at the last poll.
    Down,
    /// Up, but none of the modems that could send the number works now.
    NoWorkingModem,
    /// No modem of it, working or down, has a tariff for the number.
    NoTariff,
    /// The request already passed through it: forwarding there would loop.
    InTrace,
    /// Refused this request for good (a 5xx).
    Refused,
    /// Failed it a moment ago (down, or out of retries): tried again after a wait.
    AlreadyTried,
    /// Forwarding there would pass `routing.max_hops`.
    MaxHops,
}

impl Skip {
    /// Whether the instance may take the request later: then it waits, not fails.
    pub fn may_recover(self) -> bool {
        matches!(self, Skip::Down | Skip::NoWorkingModem | Skip::AlreadyTried)
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Skip::Down => "down (its status does not answer)",
            Skip::NoWorkingModem => "no working modem",
            Skip::NoTariff => "no tariff for this number",
            Skip::InTrace => "already passed through (loop)",
            Skip::Refused => "refused this request",
            Skip::AlreadyTried => "failed this request a moment ago",
            Skip::MaxHops => "routing.max_hops reached: only this instance may send it",
        })
    }
}

/// An instance left out of the plan, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// The instance's name.
    pub name: String,
    /// Why it was left out.
    pub why: Skip,
}

/// The candidates cheapest first (ties broken by name), and those skipped with why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Instances that may send the number, cheapest first (ties by name).
    pub ranked: Vec<Candidate>,
    /// Instances left out, in view order, with why.
    pub skipped: Vec<Skipped>,
}

/// What a request has been through, as routing must know it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Past<'a> {
    /// The instances it passed through before this one.
    pub trace: &'a [String],
    /// Peers that refused it for good.
    pub refused: &'a [String],
    /// Peers that failed it since it last waited.
    pub tried: &'a [String],
}

/// Ranks the instances that may send to `number` (E.164).
pub fn plan(number: &E164, view: &View, past: Past<'_>) -> Plan {
    let mut result = Plan::default();
    // A request may pass through `max_hops` instances: forwarding from here makes one more.
    let may_forward = past.trace.len() + 2 <= view.max_hops;
    for instance in &view.instances {
        match cost(number, view, instance, past, may_forward) {
            Ok(candidate) => result.ranked.push(candidate),
            Err(why) => result.skipped.push(Skipped {
                name: instance.name.clone(),
                why,
            }),
        }
    }
    result
        .ranked
        .sort_by(|a, b| a.total.total_cmp(&b.total).then_with(|| a.name.cmp(&b.name)));
    result
}

/// The cost at one instance, or why it is skipped. What never changes is asked first
/// (loop, refusal, tariff, by the last status known even of a peer now down), so that a
/// request no instance could ever send fails at once instead of waiting.
fn cost(number: &E164, view: &View, instance: &Instance, past: Past<'_>, may_forward: bool) -> Result<Candidate, Skip> {
    if !instance.local {
        if past.trace.contains(&instance.name) {
            return Err(Skip::InTrace);
        }
        if past.refused.contains(&instance.name) {
            return Err(Skip::Refused);
        }
        if !may_forward {
            return Err(Skip::MaxHops);
        }
    }
    let working = instance
        .modems
        .iter()
        .filter_map(|modem| modem.lookup(number))
        .min_by(f64::total_cmp);
    // This instance's modems are known from its config, even when it has none.
    let known = instance.local || !instance.modems.is_empty() || !instance.resting.is_empty();
    let later = instance.resting.iter().any(|modem| modem.lookup(number).is_some());
    let tariff = match working {
        Some(tariff) => tariff,
        // Its modems for this number are down (or nothing is known of them): it may come back.
        None if later || !known => return Err(if instance.up { Skip::NoWorkingModem } else { Skip::Down }),
        None => return Err(Skip::NoTariff),
    };
    if !instance.local {
        if !instance.up {
            return Err(Skip::Down);
        }
        if past.tried.contains(&instance.name) {
            return Err(Skip::AlreadyTried);
        }
    }
    let link = if instance.local { 0.0 } else { instance.link_cost };
    let workload = instance.queued as f64 / instance.modems.len() as f64 * view.workload_cost;
    Ok(Candidate {
        name: instance.name.clone(),
        local: instance.local,
        tariff,
        link,
        workload,
        total: tariff + link + workload,
    })
}

/// Whether any instance could ever send to a number, by what is known of its modems'
/// tariffs (working or not): what `RCPT TO` asks before accepting a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// A modem of some instance has a tariff for it.
    Covered,
    /// None known has, but an instance's tariffs are not known yet (a peer not polled,
    /// or that never answered): it may.
    Unknown,
    /// No modem of any instance has a tariff for it: why, naming the instances.
    Nowhere(String),
}

/// What is known of one instance's tariffs, for [`reach`].
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// The instance's name.
    pub name: &'a str,
    /// The tariffs of all its modems, working or not; `None` while nothing is known of
    /// it.
    pub tariffs: Option<&'a [Tariff]>,
}

/// Whether any of `instances` could ever send to `number`.
pub fn reach(number: &E164, instances: &[Known<'_>]) -> Reach {
    let covers = |known: &Known<'_>| {
        known
            .tariffs
            .is_some_and(|tariffs| tariffs.iter().any(|t| t.lookup(number).is_some()))
    };
    if instances.iter().any(covers) {
        return Reach::Covered;
    }
    if instances.iter().any(|known| known.tariffs.is_none()) {
        return Reach::Unknown;
    }
    let names: Vec<&str> = instances.iter().map(|known| known.name).collect();
    Reach::Nowhere(format!(
        "no route to {number}: no modem of {} has a tariff for it",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, local: bool, link: f64, modems: &[&[(&str, f64)]], queued: u64) -> Instance {
        Instance {
            name: name.into(),
            local,
            up: true,
            link_cost: link,
            modems: modems.iter().map(|m| Tariff::new(m.iter().copied())).collect(),
            resting: Vec::new(),
            queued,
        }
    }

    /// uk (local), fr, de as in the README's example.
    fn view() -> View {
        View {
            instances: vec![
                instance("uk", true, 0.0, &[&[("+", 0.10), ("+44", 0.02)]], 0),
                instance("fr", false, 0.01, &[&[("+33", 0.01)], &[("+", 0.09)]], 0),
                instance("de", false, 0.01, &[&[("+49", 0.01), ("+33", 0.04)]], 0),
            ],
            workload_cost: 0.001,
            max_hops: 4,
        }
    }

    fn n(text: &str) -> E164 {
        text.parse().unwrap()
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.ranked.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn cheapest_first_by_tariff_plus_link_plus_workload() {
        let view = view();
        let table: [(&str, &[&str]); 4] = [
            ("+33477858589", &["fr", "de", "uk"]),
            ("+447911123456", &["uk", "fr"]),
            ("+4915112345678", &["de", "fr", "uk"]),
            ("+12025550123", &["fr", "uk"]),
        ];
        for (number, expected) in table {
            assert_eq!(names(&plan(&n(number), &view, Past::default())), expected, "{number}");
        }
        let fr = &plan(&n("+33477858589"), &view, Past::default()).ranked[0];
        assert_eq!((fr.tariff, fr.link, fr.workload), (0.01, 0.01, 0.0));
        assert!((fr.total - 0.02).abs() < 1e-12);
    }

    #[test]
    fn longest_prefix_of_each_modem_then_the_cheapest_modem() {
        let tariff = Tariff::new([("+", 0.10), ("+33", 0.50), ("+336", 0.05)]);
        assert_eq!(tariff.lookup("+33612345678"), Some(0.05));
        assert_eq!(tariff.lookup("+33477858589"), Some(0.50));
        assert_eq!(tariff.lookup("+447911123456"), Some(0.10));
        assert_eq!(Tariff::new([("+33", 0.5)]).lookup("+44"), None);
        // A modem whose longest prefix is dear does not hide a cheaper modem.
        let both = instance("x", true, 0.0, &[&[("+", 0.10), ("+33", 0.50)], &[("+", 0.05)]], 0);
        let view = View {
            instances: vec![both],
            workload_cost: 0.0,
            max_hops: 4,
        };
        assert_eq!(plan(&n("+33477858589"), &view, Past::default()).ranked[0].tariff, 0.05);
    }

    #[test]
    fn workload_can_outweigh_a_cheaper_tariff() {
        let mut view = view();
        // fr: 2 modems, 40 waiting: 0.01 + 0.01 + 20 × 0.001 = 0.04, still below de's 0.05.
        view.instances[1].queued = 40;
        assert_eq!(names(&plan(&n("+33477858589"), &view, Past::default()))[0], "fr");
        // 80 waiting: 0.06.
        view.instances[1].queued = 80;
        let ranked = plan(&n("+33477858589"), &view, Past::default()).ranked;
        assert_eq!(ranked[0].name, "de", "{ranked:?}");
        assert!((ranked[1].workload - 0.04).abs() < 1e-12);
    }

    #[test]
    fn skipped_candidates_say_why() {
        let mut view = view();
        view.instances[1].up = false;
        view.instances[2].modems.clear();
        let plan = plan(&n("+33477858589"), &view, Past::default());
        assert_eq!(names(&plan), ["uk"]);
        let why: Vec<(&str, Skip)> = plan.skipped.iter().map(|s| (s.name.as_str(), s.why)).collect();
        assert_eq!(why, [("fr", Skip::Down), ("de", Skip::NoWorkingModem)]);
        assert!(why.iter().all(|(_, skip)| skip.may_recover()));
        let view = super::tests::view();
        let plan = super::plan(&n("+12025550123"), &view, Past::default());
        assert_eq!(
            plan.skipped,
            [Skipped {
                name: "de".into(),
                why: Skip::NoTariff
            }]
        );
    }

    #[test]
    fn trace_refusals_tries_and_max_hops() {
        let view = view();
        let names_of = |past: Past<'_>| names(&plan(&n("+33477858589"), &view, past)).join(" ");
        let fr = vec!["fr".to_string()];
        let both = vec!["fr".to_string(), "de".into()];
        assert_eq!(
            names_of(Past {
                trace: &fr,
                ..Past::default()
            }),
            "de uk"
        );
        assert_eq!(
            names_of(Past {
                refused: &both,
                ..Past::default()
            }),
            "uk"
        );
        assert_eq!(
            names_of(Past {
                tried: &both,
                ..Past::default()
            }),
            "uk"
        );
        // Three instances passed through, max_hops 4: this is the fourth, it must send.
        let long = vec!["a".to_string(), "b".into(), "c".into()];
        let plan = plan(
            &n("+33477858589"),
            &view,
            Past {
                trace: &long,
                ..Past::default()
            },
        );
        assert_eq!(names(&plan), ["uk"]);
        assert!(plan.skipped.iter().all(|s| s.why == Skip::MaxHops));
    }

    #[test]
    fn a_peer_down_is_skipped_but_its_last_tariffs_still_say_what_it_could_never_send() {
        let mut view = view();
        view.instances[0].modems.clear();
        view.instances[1].up = false;
        view.instances[2].up = false;
        let french = plan(&n("+33477858589"), &view, Past::default());
        assert!(french.ranked.is_empty());
        assert!(french.skipped.iter().any(|s| s.why.may_recover()), "{french:?}");
        // uk's only French modem is down: uk may send it later, so it is not a refusal.
        let mut resting = view.clone();
        resting.instances[0].resting = vec![Tariff::new([("+33", 0.05)])];
        let skipped = plan(&n("+33477858589"), &resting, Past::default()).skipped;
        assert_eq!(skipped[0].why, Skip::NoWorkingModem);
        // No instance ever had a tariff for Japan: nothing to wait for.
        view.instances[0].modems = vec![Tariff::new([("+44", 0.02)])];
        view.instances[1].modems = vec![Tariff::new([("+33", 0.01)])];
        let japanese = plan(&n("+81312345678"), &view, Past::default());
        let why: Vec<Skip> = japanese.skipped.iter().map(|s| s.why).collect();
        assert_eq!(why, [Skip::NoTariff, Skip::NoTariff, Skip::NoTariff]);
    }

    #[test]
    fn a_number_is_reached_if_any_modem_known_has_a_tariff_for_it() {
        let tariffs = |modems: &[&[(&str, f64)]]| -> Vec<Tariff> {
            modems.iter().map(|m| Tariff::new(m.iter().copied())).collect()
        };
        let (uk_modems, fr_modems) = (
            tariffs(&[&[("+44", 0.02)], &[("+447", 0.01)]]),
            tariffs(&[&[("+33", 0.01)]]),
        );
        let catch_all = tariffs(&[&[("+", 0.1)]]);
        let known = |name, tariffs| Known { name, tariffs };
        let uk = known("uk", Some(&uk_modems[..]));
        let fr = known("fr", Some(&fr_modems[..]));
        let none = known("de", Some(&[][..]));
        let unpolled = known("it", None);
        assert_eq!(reach(&n("+447911123456"), &[uk]), Reach::Covered);
        assert_eq!(reach(&n("+33477858589"), &[uk, fr, none]), Reach::Covered);
        assert_eq!(
            reach(&n("+4915112345678"), &[uk, fr, none]),
            Reach::Nowhere("no route to +4915112345678: no modem of uk, fr, de has a tariff for it".into())
        );
        // A peer whose tariffs are not known yet may have one.
        assert_eq!(reach(&n("+4915112345678"), &[uk, unpolled]), Reach::Unknown);
        assert_eq!(reach(&n("+447911123456"), &[unpolled, uk]), Reach::Covered);
        // The catch-all prefix covers every number.
        assert_eq!(
            reach(&n("+81312345678"), &[known("x", Some(&catch_all[..]))]),
            Reach::Covered
        );
    }

    #[test]
    fn this_instance_without_modems_is_known_to_send_nothing() {
        let mut view = view();
        view.instances[0].modems.clear();
        // No instance has a tariff for Japan: with uk's (no) modems known, nothing to wait for.
        view.instances[1].modems = vec![Tariff::new([("+33", 0.01)])];
        let japanese = plan(&n("+81312345678"), &view, Past::default());
        let why: Vec<Skip> = japanese.skipped.iter().map(|s| s.why).collect();
        assert_eq!(why, [Skip::NoTariff, Skip::NoTariff, Skip::NoTariff]);
    }

    #[test]
    fn ties_break_on_name() {
        let view = View {
            instances: vec![
                instance("b", false, 0.0, &[&[("+", 0.1)]], 0),
                instance("a", false, 0.0, &[&[("+", 0.1)]], 0),
                instance("c", true, 0.0, &[&[("+", 0.1)]], 0),
            ],
            workload_cost: 0.0,
            max_hops: 4,
        };
        assert_eq!(
            names(&plan(&n("+33477858589"), &view, Past::default())),
            ["a", "b", "c"]
        );
    }
}
