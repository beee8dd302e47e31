//! The pseudo-terminal: the gateway opens the slave as its serial port, the modem
//! speaks on the master.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::pty::{OpenptyResult, openpty};
use nix::sys::termios::{FlowArg, SetArg, cfmakeraw, tcflow, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;

/// A pseudo-terminal pair: the modem's end (master) and the device the gateway opens.
#[derive(Debug)]
pub(super) struct Pty {
    master: AsyncFd<OwnedFd>,
    /// Held so that the master never reads EIO between the gateway's close and reopen;
    /// also where the `wedge_after_sends` fault stops the gateway's writes.
    slave: OwnedFd,
    /// The slave's path (/dev/pts/N): the modem's serial port for the gateway.
    pub device: PathBuf,
}

impl Pty {
    /// A new pair in raw mode, not inherited by child processes.
    pub(super) fn open() -> io::Result<Pty> {
        let OpenptyResult { master, slave } = openpty(None, None)?;
        // Both ends share one termios: raw now, so that nothing the modem writes before
        // the gateway opens the port (and sets raw mode itself) is echoed or rewritten.
        let mut termios = tcgetattr(&master)?;
        cfmakeraw(&mut termios);
        tcsetattr(&master, SetArg::TCSANOW, &termios)?;
        // openpty(3) leaves both inheritable; a child process must not keep the modem open.
        for fd in [&master, &slave] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        }
        let flags = OFlag::from_bits_retain(fcntl(&master, FcntlArg::F_GETFL)?);
        fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        let device = nix::unistd::ttyname(&slave)?;
        // SAFETY: the OwnedFd is a valid descriptor, and the AsyncFd owns it until it is
        // dropped: nothing else closes or replaces it.
        let master = unsafe { AsyncFd::register(master)? };
        Ok(Pty { master, slave, device })
    }

    /// Stops the slave's output for good, as XOFF would: the gateway's writes to the
    /// port block (a nonblocking write fails with EAGAIN), as on a wedged USB port.
    pub(super) fn stop_input(&self) -> io::Result<()> {
        tcflow(&self.slave, FlowArg::TCOOFF)?;
        Ok(())
    }

    /// Reads what the gateway wrote, waiting until there is something.
    pub(super) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.master.readable().await?;
            if let Ok(result) = ready.try_io(|fd| Ok(nix::unistd::read(fd.get_ref(), buf)?)) {
                return result;
            }
        }
    }

    /// Writes all of `bytes` for the gateway to read.
    pub(super) async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut ready = self.master.writable().await?;
            if let Ok(result) = ready.try_io(|fd| Ok(nix::unistd::write(fd.get_ref(), bytes)?)) {
                bytes = &bytes[result?..];
            }
        }
        Ok(())
    }
}
