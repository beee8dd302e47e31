//! The message as DATA sends it (RFC 5321 §4.5.2).

/// CRLF line ends (a bare LF becomes CRLF), a dot doubled at the start of any line so
/// that no line of the message reads as the end, and the final `.` line.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(message.len() + 64);
    for line in message.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            data.push(b'.');
        }
        data.extend_from_slice(line);
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    data
}

#[cfg(test)]
mod tests {
    use super::dot_stuff;

    #[test]
    fn lines_are_crlf_and_leading_dots_doubled() {
        let table: [(&[u8], &[u8]); 10] = [
            (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
            (b"a\nb", b"a\r\nb\r\n.\r\n"),
            (b".hidden\r\n..two\r\n", b"..hidden\r\n...two\r\n.\r\n"),
            (b"\r\n.\r\n", b"\r\n..\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            (b"a.\r\n. b\r\n", b"a.\r\n.. b\r\n.\r\n"),
            (b"no end", b"no end\r\n.\r\n"),
            // A lone CR inside a line is data, not a line end.
            (b"a\rb\r\n", b"a\rb\r\n.\r\n"),
            (b"caf\xc3\xa9\n.\xc3\xa9\n", b"caf\xc3\xa9\r\n..\xc3\xa9\r\n.\r\n"),
            (b"", b".\r\n"),
        ];
        for (message, expected) in table {
            assert_eq!(
                String::from_utf8_lossy(&dot_stuff(message)),
                String::from_utf8_lossy(expected),
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
    }
}
