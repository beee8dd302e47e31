#!/usr/bin/env python3
"""Peak memory of the gateway while many sessions send large messages at once.

N sessions (default 1,000) each send a body of SIZE bytes (default 1 MiB) through DATA,
all at once: every session has sent its whole body before any sends its final dot. The
gateway's peak resident size (VmHWM in /proc/<pid>/status) is printed with the replies
(250: stored; 452 4.3.1: smtp.max_buffered_bytes in use, to be retried).

Run from the project root, after `cargo build --release` (or give another binary):

    ulimit -n 4096          # one descriptor per session on each side
    contrib/bench/edge-memory.py [--sessions 1000] [--size 1048576]
                             [--budget BYTES] [--binary target/release/smsgw]
"""

import argparse
import collections
import socket
import subprocess
import sys
import threading
import time

from edgegateway import reply
import edgegateway


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def code_of(line):
    """An SMTP reply's code, or None when the connection closed."""
    return int(line[:3]) if line else None


def session(address, source, body, all_sent, codes):
    code = None
    try:
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(address)
        f = sock.makefile("rb")
        reply(f)
        sock.sendall(b"EHLO bench.example\r\n")
        reply(f)
        sock.sendall(b"MAIL FROM:<bench@example.com>\r\n")
        code = code_of(reply(f))
        if code == 250:
            sock.sendall(b"RCPT TO:<+33477858589@sms>\r\n")
            reply(f)
            sock.sendall(b"DATA\r\n")
            reply(f)
            sock.sendall(body)
        all_sent.wait()
        if code == 250:
            sock.sendall(b"\r\n.\r\n")
            code = code_of(reply(f))
        sock.sendall(b"QUIT\r\n")
        reply(f)
        sock.close()
    except OSError as error:
        code = f"error: {error}"
        all_sent.abort()
    codes.append(code)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1024 * 1024)
    parser.add_argument("--budget", type=int, help="smtp.max_buffered_bytes (default: the gateway's)")
    parser.add_argument("--binary", default="target/release/smsgw")
    args = parser.parse_args()

    budget = f"max_buffered_bytes = {args.budget}\n" if args.budget else ""
    # Twice the sessions as max_connections: below 80%, so no stress mode shortens the
    # timeouts of sessions that wait for the others at the barrier.
    gateway, address, work = edgegateway.start(
        args.binary,
        f'[smtp]\nlisten = ["127.0.0.1:0"]\nmax_connections = {args.sessions * 2}\n'
        f"max_message_size = {args.size + 64 * 1024}\n{budget}"
        "[security]\nper_minute = 0\nper_day = 0\nnumbers_per_day = 0\n",
        "edge-memory",
    )
    before = status_kib(gateway.pid, "VmRSS:")

    line = b"x" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (args.size // len(line))
    all_sent = threading.Barrier(args.sessions)
    codes = []
    threading.stack_size(256 * 1024)
    started = time.monotonic()
    threads = []
    for i in range(args.sessions):
        # Sources spread over 127.0.0.0/8, as many clients would be.
        source = f"127.0.{1 + i // 250}.{1 + i % 250}"
        thread = threading.Thread(target=session, args=(address, source, body, all_sent, codes))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    peak = status_kib(gateway.pid, "VmHWM:")
    gateway.terminate()
    gateway.wait()
    print(f"{args.sessions} sessions x {len(body)} bytes in {elapsed:.1f} s")
    print(f"replies: {dict(collections.Counter(codes))}")
    print(f"gateway resident: {before / 1024:.0f} MiB before, peak (VmHWM) {peak / 1024:.0f} MiB")
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())
