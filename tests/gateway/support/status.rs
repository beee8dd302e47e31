//! A stand-in for a peer's `/status` endpoint, serving a document the test wrote.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};

/// Serves `body` as the answer to every HTTP request, as a status document would be.
pub(crate) fn static_status(body: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    address
}
