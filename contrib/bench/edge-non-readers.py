#!/usr/bin/env python3
"""How long a legitimate client waits while clients that never read hold every slot.

The recipe of issue 15: `smtp.max_connections = 24`, nothing else changed (timeouts
300 s). 24 clients from 127.0.0.2 ... 127.0.0.25 each pipeline MB of `NOOP` and never
read a reply. A client from 127.0.0.1 then connects every half second until it is
greeted with 220, and sends one mail. Prints how long after the attack it was served.
`--command "EHLO x"` pipelines a command with a longer answer. Both are junk commands
(past 100 + smtp.max_recipients of them a session is closed for errors, soon before or
after its writes block); before EHLO counted as junk, the write deadline decided.

Run from the project root, after `cargo build --release` (or give another binary):

    contrib/bench/edge-non-readers.py [--attackers 24] [--command NOOP]
                                      [--binary target/release/smsgw]
"""

import argparse
import socket
import subprocess
import sys
import threading
import time

from edgegateway import reply
import edgegateway


def attacker(address, source, attack, held):
    sock = socket.socket()
    # A small receive buffer: the gateway's answers fill it at once.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    sock.connect(address)
    held.append(sock)
    try:
        sock.sendall(attack)
    except OSError:
        pass  # the gateway gave up on this client


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=24)
    parser.add_argument("--command", default="NOOP", help="the line each attacker pipelines")
    parser.add_argument("--binary", default="target/release/smsgw")
    args = parser.parse_args()
    gateway, address, work = edgegateway.start(
        args.binary, '[smtp]\nlisten = ["127.0.0.1:0"]\nmax_connections = 24\n', "edge-non-readers"
    )

    line = args.command.encode() + b"\r\n"
    attack = line * (16 * 1024 * 1024 // len(line))
    held = []
    for i in range(args.attackers):
        threading.Thread(
            target=attacker, args=(address, f"127.0.0.{2 + i}", attack, held), daemon=True
        ).start()
    while len(held) < args.attackers:
        time.sleep(0.01)
    started = time.monotonic()
    refused = 0
    while True:
        sock = socket.create_connection(address)
        f = sock.makefile("rb")
        greeting = reply(f)
        if greeting and greeting.startswith("220"):
            break
        refused += 1
        sock.close()
        time.sleep(0.5)
    waited = time.monotonic() - started
    answers = []
    for command in [
        b"EHLO legit.example",
        b"MAIL FROM:<legit@example.com>",
        b"RCPT TO:<+33477858589@sms>",
        b"DATA",
        b"Subject: legit\r\n\r\nserved\r\n.",
    ]:
        sock.sendall(command + b"\r\n")
        answers.append(reply(f))
    print(f"served {waited:.1f} s after the attack began ({refused} connections refused before)")
    print(f"its mail: {answers[-1]}")
    gateway.terminate()
    gateway.wait()
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())
