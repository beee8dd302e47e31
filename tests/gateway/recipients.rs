//! RCPT TO: every address form of the README ("Recipients"), and precise refusals.

use crate::support::gateway::Gateway;

#[test]
fn every_address_form_becomes_its_e164_number() {
    let gateway = Gateway::start("[sms]\ndefault_region = \"FR\"\n");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    let forms = [
        ("+33477858589@sms", "+33477858589"),
        ("0033477858589@sms", "+33477858589"),
        ("0477858589@sms", "+33477858589"),
        ("\"Paul@+33477858589\"@sms", "+33477858589"),
        ("Paul.+33477858589@sms", "+33477858589"),
        ("paul=+33477858589@sms", "+33477858589"),
        ("\"+33 4 77 85 85 89\"@sms", "+33477858589"),
        ("+33-4-77-85-85-89@sms", "+33477858589"),
        ("\"+33(0)477858589\"@SMS", "+33477858589"),
        ("+447911123456@Sms", "+447911123456"),
    ];
    for (address, number) in forms {
        client.command("MAIL FROM:<a@example.com>", 250);
        let reply = client.command(&format!("RCPT TO:<{address}>"), 250);
        assert!(reply.text().contains(number), "{address}: {reply:?}");
        client.command("RSET", 250);
    }
}

#[test]
fn refusals_name_the_problem() {
    let gateway = Gateway::start("[sms]\ndefault_region = \"FR\"\n");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    let refused = [
        ("+33477858589@example.com", 550, "5.7.1"),
        ("someone@example.com", 550, "5.7.1"),
        ("+33477858589@sms.", 550, "5.7.1"),
        ("+33477858589%example.com@sms", 550, "5.7.1"),
        ("\"+33477858589@example.com\"@sms", 550, "5.7.1"),
        ("paul@sms", 553, "5.1.3"),
        ("+3347785858@sms", 553, "5.1.3"),
        ("+33899123456@sms", 550, "5.7.1"),
    ];
    for (address, code, status) in refused {
        let reply = client.command(&format!("RCPT TO:<{address}>"), code);
        assert!(reply.text().starts_with(status), "{address}: {reply:?}");
        assert!(reply.text().len() > 10, "{address}: no reason given: {reply:?}");
    }
    let log = gateway.wait_for_log("+3347785858@sms");
    assert!(log.contains("refused"), "{log}");
}

#[test]
fn the_number_of_recipients_is_limited() {
    let gateway = Gateway::start("[smtp]\nmax_recipients = 2\n");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("RCPT TO:<+33477858589@sms>", 250);
    client.command("RCPT TO:<+447911123456@sms>", 250);
    let reply = client.command("RCPT TO:<+447911123457@sms>", 452);
    assert!(reply.text().starts_with("4.5.3"), "{reply:?}");
}

#[test]
fn a_number_given_twice_gets_one_sms() {
    let gateway = Gateway::start("");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("RCPT TO:<+33477858589@sms>", 250);
    client.command("RCPT TO:<\"Paul@+33477858589\"@sms>", 250);
    client.command("DATA", 354);
    client.send("Subject: once\r\n\r\nhello\r\n.\r\n");
    client.expect(250);
    assert_eq!(gateway.queue().len(), 1);
}

#[test]
fn refused_recipients_do_not_end_the_session() {
    let gateway = Gateway::start("[smtp]\nmax_errors = 3\n");
    let mut client = gateway.client();
    client.command("EHLO mta.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    for bad in ["nobody@sms", "+3347785858@sms", "x@example.org", "+1@sms", "y@sms"] {
        client.send(&format!("RCPT TO:<{bad}>\r\n"));
        assert!(client.reply().unwrap().code >= 550);
    }
    client.command("RCPT TO:<+33477858589@sms>", 250);
    client.command("DATA", 354);
    client.send("Subject: some got through\r\n\r\nok\r\n.\r\n");
    client.expect(250);
}

#[test]
fn a_number_no_modem_has_a_tariff_for_is_refused_with_no_route() {
    let gateway = Gateway::start(
        "[[modem]]\nname = \"sim0\"\nport = \"sim\"\ntariff = { \"+44\" = 0.03 }\n\n\
         [[modem]]\nname = \"sim1\"\nport = \"sim\"\ntariff = { \"+4477\" = 0.01 }\n",
    );
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("RCPT TO:<+447911123456@sms>", 250);
    let reply = client.command("RCPT TO:<+33477858589@sms>", 550);
    assert_eq!(
        reply.text(),
        "5.4.4 No route to +33477858589: no modem of smsgw has a tariff for it"
    );
    client.command("DATA", 354);
    client.send("Subject: British only\r\n\r\nhello\r\n.\r\n");
    client.expect(250);
    let queue = gateway.queue();
    assert_eq!(queue.len(), 1, "{queue:#?}");
    assert_eq!(queue[0]["number"], "+447911123456");
    let log = gateway.wait_for_log("+33477858589@sms");
    assert!(log.contains("refused"), "{log}");
}

#[test]
fn a_modem_without_a_tariff_sends_to_every_number() {
    let gateway = Gateway::start("[[modem]]\nname = \"sim0\"\nport = \"sim\"\n");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    for number in ["+33477858589", "+4915112345678", "+81312345678"] {
        client.command(&format!("RCPT TO:<{number}@sms>"), 250);
    }
}
