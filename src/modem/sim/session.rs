//! The task that runs one modem: reads the master, fires timers, writes answers.

use std::future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::{sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use super::clock::Now;
use super::modem::Modem;
use super::pty::Pty;
use super::record::Records;
use super::types::Output;
use super::{Incoming, SimError};

/// How long a write may wait for a gateway that does not read: a UART without flow
/// control would drop the bytes, so the modem does too rather than stop answering.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the folder of SMS to receive (`smsgw modem inject`) is looked at.
const INJECT_POLL: Duration = Duration::from_millis(200);

/// Runs until `shutdown`, or until a `hang_up` fault closes the pseudo-terminal.
pub(super) async fn run(
    pty: Pty,
    mut modem: Modem,
    mut records: Records,
    inject: PathBuf,
    shutdown: CancellationToken,
) -> Result<(), SimError> {
    let mut buf = [0u8; 1024];
    let mut wedged = false;
    let mut injections = tokio::time::interval(INJECT_POLL);
    injections.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut out = Output {
            garbage: modem.config.garbage,
            ..Output::default()
        };
        let due = modem.next_due();
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = sleep_or_never(due) => modem.fire_due(Now::read(), &mut out),
            _ = injections.tick() => {
                for sms in injected(&inject).await {
                    if let Err(error) = modem.inject(&sms, Now::read()) {
                        tracing::warn!(modem = %modem.name, %error, "an SMS to receive cannot be encoded: dropped");
                    }
                }
            }
            // Wedged, nothing reaches the modem any more (the slave's output is stopped).
            read = pty.read(&mut buf), if !wedged => match read.map_err(SimError::Pty)? {
                0 => return Err(SimError::Pty(std::io::ErrorKind::UnexpectedEof.into())),
                n => modem.input(&buf[..n], Now::read(), &mut out),
            },
        }
        for record in &out.records {
            records.append(record)?;
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            written = timeout(WRITE_TIMEOUT, pty.write_all(&out.bytes)) => match written {
                Ok(result) => result.map_err(SimError::Pty)?,
                Err(_) => tracing::warn!(modem = %modem.name, bytes = out.bytes.len(), "port not read: output dropped"),
            },
        }
        if out.hang_up {
            return Ok(());
        }
        if out.wedge && !wedged {
            pty.stop_input().map_err(SimError::Pty)?;
            wedged = true;
        }
    }
}

/// The SMS written into `folder` since the last look, oldest file name first; each file
/// is deleted once read. A file that is not one is renamed `.bad` and logged.
async fn injected(folder: &Path) -> Vec<Incoming> {
    let Ok(mut entries) = tokio::fs::read_dir(folder).await else {
        return Vec::new();
    };
    let mut files = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let read = tokio::fs::read(&path).await;
        match read.map(|bytes| serde_json::from_slice::<Incoming>(&bytes)) {
            Ok(Ok(sms)) => {
                let _ = tokio::fs::remove_file(&path).await;
                found.push(sms);
            }
            Ok(Err(error)) => {
                tracing::warn!(file = %path.display(), %error, "not an SMS to receive (from, text): set aside as .bad");
                let _ = tokio::fs::rename(&path, path.with_extension("bad")).await;
            }
            Err(error) => tracing::warn!(file = %path.display(), %error, "cannot read an SMS to receive"),
        }
    }
    found
}

async fn sleep_or_never(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => sleep_until(at).await,
        None => future::pending().await,
    }
}
