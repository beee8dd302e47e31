//! The records file: one JSON line per SMS part the modem accepted.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use super::SimError;
use super::clock::Utc;
use super::submit::Submitted;

/// One line of the records file: one accepted SMS part, with what the network was given.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Record {
    /// RFC 3339, UTC.
    time: String,
    modem: String,
    mr: u8,
    /// The hex exactly as received after the `> ` prompt.
    pdu: String,
    number: String,
    text: String,
    part: u8,
    parts: u8,
}

impl Record {
    /// The record of a part accepted as message reference `mr` at `at`.
    pub(super) fn new(modem: &str, mr: u8, submitted: Submitted, at: SystemTime) -> Record {
        Record {
            time: Utc::of(at).rfc3339(),
            modem: modem.to_string(),
            mr,
            pdu: submitted.pdu,
            number: submitted.number,
            text: submitted.text,
            part: submitted.part,
            parts: submitted.parts,
        }
    }
}

/// The records file, open for appending.
#[derive(Debug)]
pub(super) struct Records {
    path: PathBuf,
    file: std::fs::File,
}

impl Records {
    /// Opens (creating it and its directory if missing) the file at `path` for appending.
    pub(super) async fn open(path: PathBuf) -> std::io::Result<Records> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?
            .into_std()
            .await;
        Ok(Records { path, file })
    }

    /// A blocking write on purpose: the line is in the file before `+CMGS` is answered,
    /// so whoever reads that answer finds its record.
    pub(super) fn append(&mut self, record: &Record) -> Result<(), SimError> {
        let mut line = serde_json::to_vec(record).expect("a record always serialises");
        line.push(b'\n');
        self.file.write_all(&line).map_err(|source| SimError::Records {
            path: self.path.clone(),
            source,
        })
    }
}
