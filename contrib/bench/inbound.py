#!/usr/bin/env python3
"""Incoming SMS, measured on this machine: the whole path from the network to a mail.

N SMS (a third of them long, in 3 parts) reach one instance's simulated modem, in
waves of 8 that fit its SIM (30 slots), the next written as soon as the last is stored
(into its inject folder, as `smsgw modem inject` does); its worker reads each
part (+CMTI, AT+CMGR), commits it, deletes it (AT+CMGD); each whole SMS becomes a mail
to `inbound.default_recipient`, delivered to Postfix's smtp-sink. Measured: parts/s
stored while the modem has some (from the log: each wave's first "SMS injected" to its
last part stored; the simulator looks for new SMS every 200 ms, which is not counted),
SMS/s mailed end to end (waits included), the gateway's CPU time per SMS, its peak RSS.

Run from the project root after `cargo build --release`:
    contrib/bench/inbound.py [--sms 1000]
Needs smtp-sink (Debian package postfix).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime

BIN = os.environ.get("SMSGW_BIN", "target/release/smsgw")
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
LONG = "Long reply: " + "the quick brown fox jumps over the lazy dog, " * 9


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) // 1024
    return 0


def busy_secs(log):
    """The time the modem had parts to read (delivered by the network, not yet stored),
    from the log: between each "SMS injected ... parts=N" and the last of its parts'
    "received" lines, overlaps counted once."""
    stamp = lambda line: datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
    busy, pending, since = 0.0, 0, None
    for line in open(log):
        if "SMS injected" in line:
            parts = int(line.rsplit("parts=", 1)[1].split()[0])
            if pending == 0:
                since = stamp(line)
            pending += parts
        elif "SMS received" in line or "SMS part received" in line:
            pending -= 1
            if pending == 0:
                busy += stamp(line) - since
    return busy


def inbox(config):
    out = subprocess.run([BIN, "inbox", "list", "--json", "--limit", "1000000", "--config", config],
                         check=True, capture_output=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sms", type=int, default=1000)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="smsgw-bench-inbound-")
    sink_port, smtp_port = free_port(), free_port()
    sink = subprocess.Popen([SMTP_SINK, "-u", "nobody", f"127.0.0.1:{sink_port}", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = os.path.join(root, "smsgw.toml")
    with open(config, "w") as f:
        f.write(
            f'[instance]\ndata_dir = "{root}"\n[smtp]\nlisten = ["127.0.0.1:{smtp_port}"]\n'
            f'[outbound]\nsmart_host = "127.0.0.1:{sink_port}"\ntls = "none"\n'
            '[inbound]\ndefault_recipient = "desk@example.com"\n'
            '[[modem]]\nname = "sim0"\nport = "sim"\nsim = { latency_ms = 0 }\n'
        )
    log = open(os.path.join(root, "log"), "w")
    gateway = subprocess.Popen([BIN, "serve", "--config", config], stderr=log,
                               env=dict(os.environ, RUST_LOG="warn,smsgw::modem=info"))
    try:
        deadline = time.time() + 30
        while not any("ready" in l for l in open(log.name)) and time.time() < deadline:
            if gateway.poll() is not None:
                sys.exit(f"the gateway stopped: see {log.name}")
            time.sleep(0.1)
        # The ready line is logged at info: wait for the port, then a second for the modem.
        time.sleep(1)
        folder = os.path.join(root, "sim-sim0.inject")
        os.makedirs(folder, exist_ok=True)
        parts = 0
        cpu_before = cpu_secs(gateway.pid)
        start = time.time()
        wave = 8
        for n in range(args.sms):
            if n and n % wave == 0:
                # The SIM has 30 slots: the next wave once this one is stored.
                while len(inbox(config)) < n:
                    time.sleep(0.005)
            long = n % 3 == 0
            text = LONG if long else f"Short reply number {n}"
            parts += 3 if long else 1
            number = f"+336{n:08d}"
            path = os.path.join(folder, f"{n:08d}.json")
            with open(path + ".part", "w") as f:
                json.dump({"from": number, "text": text}, f)
            os.rename(path + ".part", path)
        stored_at = mailed_at = None
        while time.time() < start + 600:
            rows = inbox(config)
            if stored_at is None and len(rows) >= args.sms:
                stored_at = time.time()
            if stored_at and sum(r["state"] == "sent" for r in rows) >= args.sms:
                mailed_at = time.time()
                break
            time.sleep(0.5)
        if mailed_at is None:
            sys.exit(f"not all mailed within 10 minutes: see {log.name}")
        cpu = cpu_secs(gateway.pid) - cpu_before
        busy = busy_secs(log.name)
        stored, mailed = stored_at - start, mailed_at - start
        print(f"{args.sms} SMS ({parts} parts): the modem busy {busy:.1f} s storing them: "
              f"{parts / busy:.0f} parts/s, {args.sms / busy:.0f} SMS/s (all stored after {stored:.1f} s)")
        print(f"all mailed after {mailed:.1f} s: {args.sms / mailed:.0f} SMS/s end to end")
        print(f"gateway CPU {cpu:.2f} s ({cpu / args.sms * 1000:.2f} ms per SMS), peak RSS {peak_mib(gateway.pid)} MiB")
    finally:
        gateway.terminate()
        gateway.wait()
        sink.terminate()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
