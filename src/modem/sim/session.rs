//! The task that runs one modem: reads the master, fires timers, writes answers.

use std::future;
use std::time::Duration;

use tokio::time::{sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use super::SimError;
use super::clock::Now;
use super::modem::Modem;
use super::pty::Pty;
use super::record::Records;
use super::types::Output;

/// How long a write may wait for a gateway that does not read: a UART without flow
/// control would drop the bytes, so the modem does too rather than stop answering.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs until `shutdown`, or until a `hang_up` fault closes the pseudo-terminal.
pub(super) async fn run(
    pty: Pty,
    mut modem: Modem,
    mut records: Records,
    shutdown: CancellationToken,
) -> Result<(), SimError> {
    let mut buf = [0u8; 1024];
    let mut wedged = false;
    loop {
        let mut out = Output {
            garbage: modem.config.garbage,
            ..Output::default()
        };
        let due = modem.next_due();
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = sleep_or_never(due) => modem.fire_due(Now::read(), &mut out),
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

async fn sleep_or_never(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => sleep_until(at).await,
        None => future::pending().await,
    }
}
