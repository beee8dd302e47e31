//! Routing plan benchmark: plans per second for a cluster view whose instances hold
//! thousands of tariff prefixes (a pure function: no I/O, one core).
//!
//!     cargo bench --bench routing -- [--prefixes 10000] [--instances 10] [--plans 200000]

mod common;

use std::time::Instant;

use smsgw::e164::E164;
use smsgw::routing::plan::{Instance, Past, Tariff, View, plan};

fn main() {
    let (prefixes, instances, plans) = (
        common::option("--prefixes", 10_000),
        common::option("--instances", 10),
        common::option("--plans", 200_000),
    );
    // Each instance: two modems, each with `prefixes / 2` prefixes of 3 to 7 digits,
    // spread like real tariffs (country codes, then operator ranges).
    let view = View {
        instances: (0..instances)
            .map(|i| Instance {
                name: format!("i{i}"),
                local: i == 0,
                up: true,
                link_cost: 0.01 * i as f64,
                modems: (0..2)
                    .map(|m| {
                        let entries: Vec<(String, f64)> = (0..prefixes / 2)
                            .map(|p| {
                                let seed = p * 7919 + m * 104_729 + i * 1_299_709;
                                let digits = 3 + seed % 5;
                                let prefix = format!("+{}", seed % 10usize.pow(digits as u32));
                                (prefix, (seed % 100) as f64 / 1000.0)
                            })
                            .collect();
                        Tariff::new(entries.iter().map(|(p, c)| (p.as_str(), *c)))
                    })
                    .collect(),
                resting: Vec::new(),
                queued: (i * 13) as u64,
            })
            .collect(),
        workload_cost: 0.001,
        max_hops: 4,
    };
    let numbers: Vec<E164> = (0..1000)
        .map(|n| {
            format!("+{}", 33_000_000_000u64 + n * 9_999_991)
                .parse()
                .expect("E.164")
        })
        .collect();
    let trace = vec!["i3".to_string()];
    let started = Instant::now();
    let mut chosen = 0usize;
    for n in 0..plans {
        let past = Past {
            trace: &trace,
            ..Past::default()
        };
        let plan = plan(&numbers[n % numbers.len()], &view, past);
        chosen += plan.ranked.len();
    }
    let elapsed = started.elapsed();
    println!(
        "{plans} plans over {instances} instances × 2 modems × {} prefixes: {:.0} plans/s, {:.2} µs per plan ({chosen} candidates ranked)",
        prefixes / 2,
        plans as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / plans as f64
    );
}
