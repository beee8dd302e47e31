//! The simulated modem driven through a real pseudo-terminal opened with tokio-serial.

mod port;

use std::collections::BTreeMap;
use std::time::Duration;

use port::{Bench, Port};
use smsgw::modem::sim::{self, Incoming, SimConfig};
use smsgw::sms::{self, Pdu, Reassembler, ReportStatus, StatusReport, SubmitOptions, SubmitPdu, encode_submit};
use tokio_util::sync::CancellationToken;

const TO: &str = "+447700900123";

/// Reports come late enough that a test's next command and its prompt are over first.
fn fast() -> SimConfig {
    SimConfig {
        latency_ms: 20,
        report_delay_ms: 300,
        ..SimConfig::default()
    }
}

fn submit(number: &str, text: &str) -> Vec<SubmitPdu> {
    let opts = SubmitOptions {
        status_report: true,
        reference: 7,
        ..SubmitOptions::default()
    };
    encode_submit(number, text, &opts).unwrap()
}

/// `AT+CMGS=<n>`, the prompt, the PDU and Ctrl-Z; returns what follows up to `end`.
async fn send_part(port: &mut Port, part: &SubmitPdu, end: &str) -> String {
    send_pdu(port, part.tpdu_len, &part.hex).await;
    port.until(end).await
}

async fn send_pdu(port: &mut Port, tpdu_len: usize, hex: &str) {
    port.send(format!("AT+CMGS={tpdu_len}\r").as_bytes()).await;
    assert_eq!(port.until("> ").await, "\r\n> ");
    port.send(format!("{hex}\x1A").as_bytes()).await;
}

/// The next `+CDS`, decoded.
async fn status_report(port: &mut Port) -> StatusReport {
    let len: usize = port.line_after("+CDS: ").await.parse().unwrap();
    let pdu = port.until("\r\n").await;
    match sms::decode_with_tpdu_len(&pdu, len) {
        Ok(Pdu::StatusReport(report)) => report,
        other => panic!("+CDS {pdu:?}: {other:?}"),
    }
}

/// `AT+CMGR=<index>`, decoded.
async fn read_stored(port: &mut Port, index: u16) -> Pdu {
    port.send(format!("AT+CMGR={index}\r").as_bytes()).await;
    let header = port.line_after("+CMGR: ").await;
    let len: usize = header.rsplit(',').next().unwrap().parse().unwrap();
    let pdu = port.until("\r\n").await;
    assert_eq!(port.until("OK\r\n").await, "\r\nOK\r\n");
    sms::decode_with_tpdu_len(&pdu, len).unwrap()
}

#[test]
fn config_defaults_and_unknown_keys() {
    let config: SimConfig = serde_json::from_str(r#"{"latency_ms": 5, "cms_error": {"+447700900123": 38}}"#).unwrap();
    assert_eq!((config.latency_ms, config.report_delay_ms), (5, 1000));
    assert_eq!(config.cms_error.get(TO), Some(&38));
    assert!(serde_json::from_str::<SimConfig>(r#"{"latency": 5}"#).is_err());
}

#[tokio::test]
async fn echoes_until_ate0_and_answers_basic_commands() {
    let mut bench = Bench::start("echo", fast()).await;
    let port = &mut bench.port;
    assert_eq!(port.command("AT").await, "AT\r\r\nOK\r\n");
    assert_eq!(port.command("AT+FOO").await, "AT+FOO\r\r\nERROR\r\n");
    assert_eq!(port.command("ATE0").await, "ATE0\r\r\nOK\r\n");
    assert_eq!(port.command("AT").await, "\r\nOK\r\n");
    assert_eq!(port.command("AT+CMGF=1").await, "\r\nERROR\r\n");
    port.command("AT+CMEE=1").await;
    assert_eq!(port.command("AT+CMGF=1").await, "\r\n+CMS ERROR: 303\r\n");
    let imei = port.command("AT+CGSN").await;
    let digits = imei.trim().lines().next().unwrap();
    assert!(
        digits.len() == 15 && digits.bytes().all(|b| b.is_ascii_digit()),
        "{imei:?}"
    );
    assert_eq!(port.command("ATZ").await, "\r\nOK\r\n");
    assert_eq!(port.command("AT").await, "AT\r\r\nOK\r\n", "ATZ restores echo");
}

#[tokio::test]
async fn gateway_init_sequence() {
    let mut bench = Bench::start("init", fast()).await;
    let port = &mut bench.port;
    port.init().await;
    let table = [
        ("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n"),
        ("AT+CSCA?", "\r\n+CSCA: \"+447785016005\",145\r\n\r\nOK\r\n"),
        ("AT+CSCA=\"+33609001390\",145", "\r\nOK\r\n"),
        ("AT+CSCA?", "\r\n+CSCA: \"+33609001390\",145\r\n\r\nOK\r\n"),
        ("AT+CNMI?", "\r\n+CNMI: 2,1,0,1,0\r\n\r\nOK\r\n"),
        ("AT+CREG=0", "\r\nOK\r\n"),
        ("AT+CREG?", "\r\n+CREG: 0,1\r\n\r\nOK\r\n"),
        ("AT+CREG=3", "\r\n+CME ERROR: 3\r\n"),
        ("AT+CSQ", "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"),
        ("AT+CMGF?", "\r\n+CMGF: 0\r\n\r\nOK\r\n"),
    ];
    for (line, answer) in table {
        assert_eq!(port.command(line).await, answer, "{line}");
    }
}

#[tokio::test]
async fn pin_flow() {
    let config = SimConfig {
        pin: "1234".into(),
        ..fast()
    };
    let mut bench = Bench::start("pin", config).await;
    let port = &mut bench.port;
    port.command("ATE0").await;
    port.command("AT+CMEE=1").await;
    assert_eq!(port.command("AT+CPIN?").await, "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n");
    assert_eq!(port.command("AT+CREG?").await, "\r\n+CREG: 0,0\r\n\r\nOK\r\n");
    assert_eq!(port.command("AT+CMGS=20").await, "\r\n+CMS ERROR: 311\r\n");
    assert_eq!(port.command("AT+CPIN=\"0000\"").await, "\r\n+CME ERROR: 16\r\n");
    assert_eq!(port.command("AT+CPIN=\"1234\"").await, "\r\nOK\r\n");
    assert_eq!(port.command("AT+CPIN?").await, "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    assert_eq!(port.command("AT+CPIN=\"1234\"").await, "\r\n+CME ERROR: 3\r\n");
}

#[tokio::test]
async fn sends_records_and_reports_delivery() {
    let mut bench = Bench::start("send", fast()).await;
    bench.port.init().await;
    let parts = submit(TO, &"Long text. ".repeat(20));
    assert_eq!(parts.len(), 2);
    for (mr, part) in parts.iter().enumerate() {
        let answer = send_part(&mut bench.port, part, "OK\r\n").await;
        assert_eq!(answer, format!("\r\n+CMGS: {mr}\r\n\r\nOK\r\n"));
    }
    let records = bench.records();
    assert_eq!(records.len(), 2);
    for (i, (record, part)) in records.iter().zip(&parts).enumerate() {
        assert_eq!(record["modem"], "send");
        assert_eq!(record["mr"], i);
        assert_eq!(record["pdu"], part.hex.as_str());
        assert_eq!(record["number"], TO);
        assert_eq!(
            (record["part"].as_u64(), record["parts"].as_u64()),
            (Some(i as u64 + 1), Some(2))
        );
        assert!(record["time"].as_str().unwrap().ends_with('Z'), "{record}");
    }
    let text: String = records.iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert_eq!(text, "Long text. ".repeat(20));
    for mr in 0..2 {
        let report = status_report(&mut bench.port).await;
        assert_eq!(report.message_reference, mr);
        assert_eq!(report.recipient.number, TO);
        assert_eq!((report.status, report.result), (0x00, ReportStatus::Delivered));
    }
}

#[tokio::test]
async fn bad_pdus_and_lengths_are_refused() {
    let mut bench = Bench::start("bad", fast()).await;
    bench.port.init().await;
    let part = &submit(TO, "hello")[0];
    send_pdu(&mut bench.port, 4, "ZZZZZZZZ").await;
    assert_eq!(
        bench.port.until("\r\n+CMS ERROR: 304\r\n").await,
        "\r\n+CMS ERROR: 304\r\n"
    );
    send_pdu(&mut bench.port, part.tpdu_len + 1, &part.hex).await;
    assert_eq!(
        bench.port.until("\r\n+CMS ERROR: 304\r\n").await,
        "\r\n+CMS ERROR: 304\r\n"
    );
    send_pdu(&mut bench.port, part.tpdu_len, &part.hex[..part.hex.len() - 2]).await;
    bench.port.until("\r\n+CMS ERROR: 304\r\n").await;
    // ESC abandons the message.
    bench.port.send(format!("AT+CMGS={}\r", part.tpdu_len).as_bytes()).await;
    bench.port.until("> ").await;
    bench.port.send(format!("{}\x1B", part.hex).as_bytes()).await;
    assert_eq!(bench.port.until("OK\r\n").await, "\r\nOK\r\n");
    assert!(bench.records().is_empty());
}

#[tokio::test]
async fn cms_error_fault() {
    let config = SimConfig {
        cms_error: BTreeMap::from([(TO.to_string(), 38)]),
        ..fast()
    };
    let mut bench = Bench::start("cms", config).await;
    bench.port.init().await;
    let answer = send_part(&mut bench.port, &submit(TO, "hello")[0], "\r\n+CMS ERROR: 38\r\n").await;
    assert_eq!(answer, "\r\n+CMS ERROR: 38\r\n");
    let other = send_part(&mut bench.port, &submit("+447700900124", "hello")[0], "OK\r\n").await;
    assert_eq!(
        other, "\r\n+CMGS: 0\r\n\r\nOK\r\n",
        "the next accepted part takes the next reference"
    );
    assert_eq!(bench.records().len(), 1);
}

#[tokio::test]
async fn report_failure_fault() {
    let config = SimConfig {
        report_failure: vec![TO.to_string()],
        ..fast()
    };
    let mut bench = Bench::start("failure", config).await;
    bench.port.init().await;
    send_part(&mut bench.port, &submit(TO, "hello")[0], "OK\r\n").await;
    let report = status_report(&mut bench.port).await;
    assert_eq!((report.status, report.result), (0x41, ReportStatus::PermanentFailure));
    assert_eq!(bench.records().len(), 1);
}

#[tokio::test]
async fn stored_status_reports_with_ds_2() {
    let mut bench = Bench::start("cdsi", fast()).await;
    bench.port.init().await;
    bench.port.command("AT+CNMI=2,1,0,2,0").await;
    send_part(&mut bench.port, &submit(TO, "hello")[0], "OK\r\n").await;
    assert_eq!(bench.port.line_after("+CDSI: ").await, "\"SR\",1");
    // Reports live in their own memory, as on real modems: not in "SM"...
    assert_eq!(bench.port.command("AT+CMGR=1").await, "\r\n+CMS ERROR: 321\r\n");
    // ...but in "SR", once AT+CPMS selects it.
    assert!(bench.port.command("AT+CPMS=\"SR\"").await.contains("+CPMS: 1,30"));
    let Pdu::StatusReport(report) = read_stored(&mut bench.port, 1).await else {
        panic!("not a status report");
    };
    assert_eq!((report.message_reference, report.result), (0, ReportStatus::Delivered));
}

#[tokio::test]
async fn silent_fault_leaves_the_send_unanswered() {
    let config = SimConfig {
        silent: vec![TO.to_string()],
        ..fast()
    };
    let mut bench = Bench::start("silent", config).await;
    bench.port.init().await;
    let part = &submit(TO, "hello")[0];
    send_pdu(&mut bench.port, part.tpdu_len, &part.hex).await;
    assert_eq!(bench.port.quiet_for(Duration::from_millis(300)).await, "");
    assert_eq!(bench.port.command("AT").await, "\r\nOK\r\n");
    assert!(bench.records().is_empty());
}

#[tokio::test]
async fn hang_up_fault_closes_the_port() {
    let config = SimConfig {
        hang_up: vec![TO.to_string()],
        ..fast()
    };
    let mut bench = Bench::start("hangup", config).await;
    bench.port.init().await;
    let part = &submit(TO, "hello")[0];
    send_pdu(&mut bench.port, part.tpdu_len, &part.hex).await;
    bench.port.until_hang_up().await;
    let sim = bench.sim.take().unwrap();
    let device = sim.device.clone();
    sim.stopped().await.expect("a hang-up is no failure");
    assert!(tokio_serial::new(device.to_string_lossy(), 115_200).open().is_err());
    assert!(bench.records().is_empty());
}

#[tokio::test]
async fn incoming_sms_are_announced_read_and_deleted() {
    let config = SimConfig {
        incoming: vec![Incoming {
            from: "+447700900555".into(),
            text: "Hi there".into(),
        }],
        ..fast()
    };
    let mut bench = Bench::start("incoming", config).await;
    bench.port.init().await;
    assert_eq!(bench.port.line_after("+CMTI: ").await, "\"SM\",1");
    let Pdu::Deliver(deliver) = read_stored(&mut bench.port, 1).await else {
        panic!("not an SMS-DELIVER");
    };
    assert_eq!(
        (deliver.originator.number.as_str(), deliver.body.as_str()),
        ("+447700900555", "Hi there")
    );
    assert_eq!(bench.port.command("AT+CMGD=1").await, "\r\nOK\r\n");
    assert_eq!(bench.port.command("AT+CMGR=1").await, "\r\n+CMS ERROR: 321\r\n");
}

#[tokio::test]
async fn incoming_sms_routed_directly_with_mt_2() {
    let config = SimConfig {
        incoming: vec![Incoming {
            from: "+447700900555".into(),
            text: "Straight through".into(),
        }],
        ..fast()
    };
    let mut bench = Bench::start("cmt", config).await;
    bench.port.command("ATE0").await;
    bench.port.command("AT+CNMI=2,2,0,1,0").await;
    let len: usize = bench.port.line_after("+CMT: ,").await.parse().unwrap();
    let pdu = bench.port.until("\r\n").await;
    let Ok(Pdu::Deliver(deliver)) = sms::decode_with_tpdu_len(&pdu, len) else {
        panic!("+CMT {pdu:?}");
    };
    assert_eq!(deliver.body.as_str(), "Straight through");
    assert_eq!(bench.port.command("AT+CMGL=4").await, "\r\nOK\r\n", "not stored");
}

#[tokio::test]
async fn concatenated_incoming_sms_reassemble() {
    let text = "A long message that takes more than one part to arrive. ".repeat(4);
    let config = SimConfig {
        incoming: vec![Incoming {
            from: "+447700900555".into(),
            text: text.clone(),
        }],
        ..fast()
    };
    let mut bench = Bench::start("concat", config).await;
    bench.port.init().await;
    let mut reassembler = Reassembler::new(4, 60);
    let mut whole = None;
    for index in 1..=2 {
        assert_eq!(bench.port.line_after("+CMTI: ").await, format!("\"SM\",{index}"));
        let Pdu::Deliver(deliver) = read_stored(&mut bench.port, index).await else {
            panic!("not an SMS-DELIVER");
        };
        whole = reassembler.push(&deliver, 0);
    }
    assert_eq!(whole.map(|w| w.text), Some(text));
}

#[tokio::test]
async fn status_reports_arrive_in_the_middle_of_a_command() {
    // The report is due halfway through the second send's latency.
    let config = SimConfig {
        latency_ms: 600,
        report_delay_ms: 300,
        ..SimConfig::default()
    };
    let mut bench = Bench::start("interleave", config).await;
    bench.port.init().await;
    let part = &submit(TO, "hello")[0];
    send_part(&mut bench.port, part, "OK\r\n").await;
    let answer = send_part(&mut bench.port, part, "+CMGS: 1\r\n\r\nOK\r\n").await;
    assert!(answer.starts_with("\r\n+CDS: "), "{answer:?}");
}

#[tokio::test]
async fn the_port_closes_and_reopens_and_shutdown_stops_the_modem() {
    let records = std::env::temp_dir().join(format!("smsgw-sim-{}-reopen.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&records);
    let shutdown = CancellationToken::new();
    let sim = sim::start("reopen", fast(), records.clone(), shutdown.clone())
        .await
        .unwrap();
    let mut port = Port::open(&sim.device);
    port.command("ATE0").await;
    // The port is opened exclusively: close it before opening it again.
    drop(port);
    let mut port = Port::open(&sim.device);
    assert_eq!(port.command("AT").await, "\r\nOK\r\n", "settings survive a reopen");
    shutdown.cancel();
    sim.stopped().await.unwrap();
    port.until_hang_up().await;
    std::fs::remove_file(&records).unwrap();
}

#[tokio::test]
async fn esc_in_command_mode_is_ignored() {
    let mut bench = Bench::start("esc", fast()).await;
    bench.port.command("ATE0").await;
    assert_eq!(bench.port.command("\x1bAT").await, "\r\nOK\r\n");
}

#[tokio::test]
async fn late_first_answer_fault_holds_the_first_answer_and_what_follows() {
    let config = SimConfig {
        late_first_answer_ms: 600,
        ..fast()
    };
    let mut bench = Bench::start("late", config).await;
    bench.port.send(b"AT\rAT+CGMI\r").await;
    // The echo of the first line at once, its answer later; the second line waits.
    assert_eq!(bench.port.quiet_for(Duration::from_millis(300)).await, "AT\r");
    assert_eq!(bench.port.until("OK\r\n").await, "\r\nOK\r\n");
    assert_eq!(bench.port.until("OK\r\n").await, "AT+CGMI\r\r\nsmsgw\r\n\r\nOK\r\n");
    assert_eq!(bench.port.command("AT").await, "AT\r\r\nOK\r\n", "on time afterwards");
}

#[tokio::test]
async fn repeat_final_fault_answers_a_send_twice() {
    let config = SimConfig {
        repeat_final: vec![TO.to_string()],
        // No status report in the middle of what this test reads.
        report_delay_ms: 60_000,
        ..fast()
    };
    let mut bench = Bench::start("repeat", config).await;
    bench.port.init().await;
    let answer = send_part(&mut bench.port, &submit(TO, "hello")[0], "OK\r\n").await;
    assert_eq!(answer, "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    // The repeat waits for the next command line, and comes before its answer.
    assert_eq!(bench.port.quiet_for(Duration::from_millis(300)).await, "");
    bench.port.send(b"AT+CSQ\r").await;
    assert_eq!(bench.port.until("OK\r\n").await, "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    assert_eq!(bench.port.until("OK\r\n").await, "\r\n+CSQ: 20,99\r\n\r\nOK\r\n");
    assert_eq!(bench.port.command("AT").await, "\r\nOK\r\n", "once only");
    assert_eq!(bench.records().len(), 1, "sent once, answered twice");
}

#[tokio::test]
async fn cpin_not_ready_fault_answers_not_ready_to_the_first_queries() {
    let config = SimConfig {
        cpin_not_ready: 2,
        ..fast()
    };
    let mut bench = Bench::start("notready", config).await;
    bench.port.init().await;
    for answer in ["NOT READY", "NOT READY", "READY"] {
        let expected = format!("\r\n+CPIN: {answer}\r\n\r\nOK\r\n");
        assert_eq!(bench.port.command("AT+CPIN?").await, expected);
    }
}

#[tokio::test]
async fn garbage_fault_writes_junk_before_every_line() {
    let config = SimConfig {
        garbage: true,
        ..fast()
    };
    let mut bench = Bench::start("garbage", config).await;
    bench.port.command("ATE0").await;
    let answer = bench.port.command("AT+CSQ").await;
    let junk = String::from_utf8_lossy(b"\x00\xff\x07\xfe\x1b\x80").into_owned();
    assert_eq!(answer, format!("{junk}\r\n+CSQ: 20,99\r\n{junk}\r\nOK\r\n"));
}

#[tokio::test]
async fn no_prompt_fault_waits_for_a_pdu_in_silence_until_esc() {
    let config = SimConfig { no_prompt: 1, ..fast() };
    let mut bench = Bench::start("noprompt", config).await;
    bench.port.init().await;
    let part = &submit(TO, "hello")[0];
    bench.port.send(format!("AT+CMGS={}\r", part.tpdu_len).as_bytes()).await;
    assert_eq!(bench.port.quiet_for(Duration::from_millis(300)).await, "");
    // Commands now go into the PDU: only ESC gets the modem back.
    bench.port.send(b"AT\r").await;
    assert_eq!(bench.port.quiet_for(Duration::from_millis(300)).await, "");
    bench.port.send(b"\x1b").await;
    assert_eq!(bench.port.until("OK\r\n").await, "\r\nOK\r\n");
    // The next send prompts.
    send_part(&mut bench.port, part, "OK\r\n").await;
    assert_eq!(bench.records().len(), 1);
}

#[tokio::test]
async fn wedge_fault_stops_the_port_taking_bytes_after_a_send() {
    let config = SimConfig {
        wedge_after_sends: 1,
        ..fast()
    };
    let mut bench = Bench::start("wedge", config).await;
    bench.port.init().await;
    send_part(&mut bench.port, &submit(TO, "hello")[0], "OK\r\n").await;
    assert!(!bench.port.takes(b"AT\r", Duration::from_millis(500)).await);
    // The modem still speaks: its status report comes.
    assert_eq!(status_report(&mut bench.port).await.message_reference, 0);
}
