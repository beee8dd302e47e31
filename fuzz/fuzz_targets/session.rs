//! Any bytes, cut into reads anywhere, drive an SMTP session to well-formed replies and
//! never a panic: every step it asks for (store, authenticate, STARTTLS, close) is
//! answered as the connection loop would, and outside a transaction it holds none of its
//! buffer budget.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use smsgw::config::Config;
use smsgw::smtp::budget::Budget;
use smsgw::smtp::policy::Policy;
use smsgw::smtp::{Session, Settings, Step};

fuzz_target!(|data: &[u8]| {
    // The first byte sets where reads are cut (every `cut` bytes); the rest is the input.
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let mut config = Config::default();
    config.smtp.max_message_size = 4096;
    config.smtp.max_errors = 1000;
    config.security.per_minute = 3;
    config.security.per_sender = cut & 1 == 1;
    let settings = Arc::new(Settings::from_config(&config));
    let policy = Arc::new(Policy::from_config(&config));
    // Small, so that the fuzzer reaches the 452 of a spent budget too.
    let budget = Arc::new(Budget::new(16 * 1024));
    let client = if cut & 2 == 0 { "127.0.0.1:25" } else { "192.0.2.1:25" };
    let mut session = Session::new(settings, policy, budget.clone(), client.parse().unwrap(), cut & 4 == 0);
    let mut out = Vec::new();
    session.greeting(&mut out);
    let cut = usize::from(cut).max(1);
    'reads: for read in input.chunks(cut) {
        let mut bytes = read.iter();
        loop {
            let after = match session.ingest(&mut bytes, &mut out) {
                Step::Read => {
                    // Outside a transaction nothing is held; inside, at most one message
                    // (one octet past the limit shows it too big) or the chunk being read.
                    let used = budget.used();
                    if session.is_between_commands() && !session.in_transaction() {
                        assert_eq!(used, 0, "budget held outside a transaction");
                    }
                    assert!(used <= 4096 + read.len(), "{used} octets held");
                    break;
                }
                Step::Flush => {
                    out.clear();
                    continue;
                }
                Step::Store(mail) => {
                    assert!(!mail.requests.is_empty(), "a mail without recipients");
                    session.stored(Ok(vec![1]), &mut out)
                }
                Step::Authenticate { user, .. } => session.authenticated(&user, None, &mut out),
                Step::StartTls => {
                    session.tls_started();
                    continue 'reads;
                }
                Step::Close => break 'reads,
            };
            if let Some(Step::Close) = after {
                break 'reads;
            }
        }
    }
    let text = String::from_utf8_lossy(&out);
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let bytes = line.as_bytes();
        assert!(
            bytes.len() >= 3 && bytes[..3].iter().all(u8::is_ascii_digit),
            "not a reply line: {line:?}"
        );
    }
});
