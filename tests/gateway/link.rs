//! A link between two instances that a test can cut: a TCP proxy relaying both ways,
//! which breaks an SMTP connection just after the end of a mail's data (or before it),
//! or holds the server's answer to it, and then refuses every connection until the
//! test mends it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The end of a mail's data, as it crosses the wire (dot-stuffing keeps it unique).
const END_OF_DATA: &[u8] = b"\r\n.\r\n";

/// What the link does with what crosses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Relays everything.
    Open,
    /// Relays the end of data to the server, then closes the client's side: the server
    /// commits the mail and answers, and its answer goes nowhere. Then `Down`.
    CutAfterEndOfData,
    /// Relays the end of data to the server, then drops the server's answer and keeps
    /// the client's side open: the server commits the mail, and the client waits for an
    /// answer that never comes (until it gives up, or is killed). Then `Down`.
    HoldAfterEndOfData,
    /// Relays the `DATA` command, then closes both sides before the server's `354`
    /// reaches the client: the client sees the break before its end of data could
    /// leave, and the server holds nothing. Then `Down`.
    CutBeforeEndOfData,
    /// Accepts each connection and closes it at once.
    Down,
}

/// One proxy: connections to `address` are relayed to the target.
pub(crate) struct Link {
    pub(crate) address: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// Links that go down when this one cuts a connection.
    followers: Arc<Mutex<Vec<Arc<Mutex<Mode>>>>>,
}

impl Link {
    /// A link to `target`, open.
    pub(crate) fn start(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Open));
        let followers: Arc<Mutex<Vec<Arc<Mutex<Mode>>>>> = Arc::default();
        let (shared, following) = (mode.clone(), followers.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if *shared.lock().unwrap() == Mode::Down {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let (mode, followers) = (shared.clone(), following.clone());
                std::thread::spawn(move || relay(client, server, mode, followers));
            }
        });
        Link {
            address,
            mode,
            followers,
        }
    }

    pub(crate) fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// When this link cuts a connection, `other` goes down at the same moment.
    pub(crate) fn cuts_with(&self, other: &Link) {
        self.followers.lock().unwrap().push(other.mode.clone());
    }
}

/// Relays one connection until either side closes it, or the link cuts it.
fn relay(client: TcpStream, server: TcpStream, mode: Arc<Mutex<Mode>>, followers: Arc<Mutex<Vec<Arc<Mutex<Mode>>>>>) {
    // Set once the client's side is cut: what the server says then goes nowhere.
    let muted = Arc::new(AtomicBool::new(false));
    // Set once the client is left waiting: what the server says then goes nowhere, and
    // the client's side stays open.
    let held = Arc::new(AtomicBool::new(false));
    let (mut from_server, mut to_client) = (server.try_clone().unwrap(), client.try_clone().unwrap());
    let (silent, holding) = (muted.clone(), held.clone());
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from_server.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) if holding.load(Ordering::SeqCst) => {}
                // The server answered the end of data: it has committed the mail.
                Ok(_) if silent.load(Ordering::SeqCst) => break,
                Ok(n) => {
                    if to_client.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = from_server.shutdown(Shutdown::Both);
        if !holding.load(Ordering::SeqCst) {
            let _ = to_client.shutdown(Shutdown::Both);
        }
    });
    let (mut from_client, mut to_server) = (client, server);
    let mut buffer = [0u8; 16 * 1024];
    // The last bytes of the previous read: the end of data may straddle two reads.
    let mut tail: Vec<u8> = Vec::new();
    // The start of the client's current line, to find its `DATA` command.
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = match from_client.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buffer[..n];
        let current = *mode.lock().unwrap();
        let mut window = tail.clone();
        window.extend_from_slice(chunk);
        let end = window
            .windows(END_OF_DATA.len())
            .position(|w| w == END_OF_DATA)
            .map(|at| at + END_OF_DATA.len() - tail.len());
        let data = data_command(&mut line, chunk);
        match (current, end, data) {
            (Mode::CutAfterEndOfData, Some(end), _) => {
                muted.store(true, Ordering::SeqCst);
                let _ = to_server.write_all(&chunk[..end]);
                let _ = from_client.shutdown(Shutdown::Both);
                go_down(&mode, &followers);
                // The server's side stays open until it has answered.
                return;
            }
            (Mode::HoldAfterEndOfData, Some(end), _) => {
                held.store(true, Ordering::SeqCst);
                let _ = to_server.write_all(&chunk[..end]);
                go_down(&mode, &followers);
                // Whatever the client says next goes nowhere; its side closes when it
                // gives up or dies.
                while matches!(from_client.read(&mut buffer), Ok(n) if n > 0) {}
                let _ = to_server.shutdown(Shutdown::Both);
                return;
            }
            (Mode::CutBeforeEndOfData, _, Some(data)) => {
                muted.store(true, Ordering::SeqCst);
                let _ = to_server.write_all(&chunk[..data]);
                let _ = from_client.shutdown(Shutdown::Both);
                let _ = to_server.shutdown(Shutdown::Both);
                go_down(&mode, &followers);
                return;
            }
            _ => {
                if to_server.write_all(chunk).is_err() {
                    break;
                }
            }
        }
        let keep = window.len().min(END_OF_DATA.len() - 1);
        tail = window[window.len() - keep..].to_vec();
    }
    let _ = to_server.shutdown(Shutdown::Both);
    let _ = from_client.shutdown(Shutdown::Both);
}

/// Where in `chunk` a `DATA` command line ends, if one does; `line` carries the start
/// of the current line from one read to the next.
fn data_command(line: &mut Vec<u8>, chunk: &[u8]) -> Option<usize> {
    for (at, &byte) in chunk.iter().enumerate() {
        if line.len() < 8 {
            line.push(byte);
        }
        if byte == b'\n' {
            let found = line.eq_ignore_ascii_case(b"DATA\r\n");
            line.clear();
            if found {
                return Some(at + 1);
            }
        }
    }
    None
}

fn go_down(mode: &Mutex<Mode>, followers: &Mutex<Vec<Arc<Mutex<Mode>>>>) {
    *mode.lock().unwrap() = Mode::Down;
    for follower in followers.lock().unwrap().iter() {
        *follower.lock().unwrap() = Mode::Down;
    }
}
