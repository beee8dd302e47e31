//! Any bytes from a modem, cut into reads anywhere, give events and never a panic; the
//! reader never keeps more than `MAX_LINE` bytes of an unfinished line; the typed answers
//! read any line without panicking; and the resynchronisation machine, fed any answers
//! and silences, ends (in step or given up) within a bounded number of steps.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use smsgw::modem::at::{self, Command, Event, Final, MAX_LINE, Reader, Registration, SignalQuality};
use smsgw::modem::sync::{Resync, Step, budget};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, as a serial port hands over bytes as they come.
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut % 64) + 1;
    let mut reader = Reader::default();
    let mut events = Vec::new();
    for piece in bytes.chunks(chunk) {
        reader.push(piece, &mut events);
        assert!(reader.pending() <= MAX_LINE, "{} bytes kept", reader.pending());
    }
    let mut info = Vec::new();
    for event in &events {
        let _ = format!("{event:?}");
        if let Event::Info(line) = event {
            info.push(line.clone());
        }
    }
    if let Some(signal) = SignalQuality::from_answer(&info) {
        assert!(signal.rssi().is_none_or(|rssi| rssi <= 31));
        assert!(signal.dbm().is_none_or(|dbm| (-113..=-51).contains(&dbm)));
        assert!(signal.ber().is_none_or(|ber| ber <= 7));
        let _ = signal.to_string();
    }
    if let Some(registration) = Registration::from_answer(&info) {
        assert_eq!(Registration::from_code(registration.code()), Some(registration));
    }
    let _ = at::message_reference(&info);
    for command in [Command::PinQuery, Command::SignalQuality, Command::Read(1), Command::Model] {
        let _ = at::plausible(&command, &info);
    }
    resync(&events);
});

/// Drives one resynchronisation with the events read as its answers, a silence after
/// each event that is an information line: it must end within a bounded number of steps,
/// and, on a clock that moves by each silence (and a millisecond per answer), within
/// its budget.
fn resync(events: &[Event]) {
    let timeout = Duration::from_secs(1);
    let (mut sync, mut step) = Resync::start(timeout);
    let mut now = Duration::ZERO;
    let mut answers = events.iter().flat_map(|event| {
        let silence = matches!(event, Event::Info(_)).then_some(None);
        [Some(event.clone())].into_iter().chain(silence)
    });
    for _ in 0..10_000 {
        step = match step {
            Step::Write(_) => sync.written(now),
            Step::Listen(window) => match answers.next() {
                Some(Some(answer)) => {
                    now += window.min(Duration::from_millis(1));
                    sync.answer(&answer, now)
                }
                Some(None) => {
                    now += window;
                    sync.quiet(now)
                }
                // Past the input: each probe gets a lone OK, then silence.
                None => match sync.answer(&Event::Final(Final::Ok), now) {
                    Step::Listen(window) => {
                        now += window;
                        sync.quiet(now)
                    }
                    other => other,
                },
            },
            Step::InStep | Step::GiveUp(_) => {
                assert!(now <= budget(timeout), "{now:?}");
                return;
            }
        };
    }
    panic!("the resynchronisation did not end");
}
