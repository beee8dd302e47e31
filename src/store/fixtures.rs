//! What the store's unit tests, on either backend, start from: a mail as intake builds one.

use crate::store::{NewMail, NewRequest};

/// A mail of `parts` SMS parts from `a@example.com` to each of `numbers`.
pub(in crate::store) fn mail(numbers: &[&str], parts: usize) -> NewMail {
    NewMail {
        sender: "a@example.com".into(),
        envid: None,
        ret: None,
        client: "127.0.0.1".into(),
        helo: "test".into(),
        auth_user: None,
        raw: b"Subject: x\r\n\r\ny".to_vec(),
        text: "x".into(),
        encoding: "gsm7".into(),
        parts,
        requests: numbers
            .iter()
            .map(|number| NewRequest {
                recipient: format!("{number}@sms"),
                number: number.parse().unwrap(),
                notify: None,
                orcpt: None,
            })
            .collect(),
        origin: None,
        trace: Vec::new(),
    }
}
