#!/usr/bin/env python3
"""A site on PostgreSQL, measured on this machine (PostgreSQL on it too).

1. Intake: Postfix's `smtp-source -s 64 -m 20000 -l 1024` against one instance on
   SQLite, one instance on PostgreSQL, and two instances of one site on PostgreSQL at
   once (32 sessions and half the mails each): mails/s accepted and committed.
2. Wake-ups across instances: mails sent one at a time to instance a, whose modem
   covers no number of them, and sent by instance b's simulated modem (latency_ms = 0):
   the time from a's 250 to the PDU reaching b's modem (its records' time stamps),
   median and p90.

Run from the project root after `cargo build --release`:
    contrib/bench/site.py [--mails 20000] [--latency-mails 200]
Needs smtp-source (Debian package postfix) and PostgreSQL (contrib/postgres/throwaway
installs it if missing).
"""

import argparse
import json
import os
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

BIN = os.environ.get("SMSGW_BIN", "target/release/smsgw")
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(url, sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], check=True)


class Instance:
    def __init__(self, root, name, store_url, modem):
        self.name, self.port = name, free_port()
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.config = os.path.join(self.dir, "smsgw.toml")
        store = f'[store]\nurl = "{store_url}"\n' if store_url else ""
        with open(self.config, "w") as f:
            f.write(
                f'[instance]\nname = "{name}"\ndata_dir = "{self.dir}"\n{store}'
                f'[smtp]\nlisten = ["127.0.0.1:{self.port}"]\nmax_connections = 1024\n'
                "[security]\nper_minute = 0\nper_day = 0\nnumbers_per_day = 0\n"
                f"{modem}"
            )
        self.log = open(os.path.join(self.dir, "log"), "w")
        env = dict(os.environ, RUST_LOG="warn,smsgw=info")
        self.process = subprocess.Popen([BIN, "serve", "--config", self.config], stderr=self.log, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit(f"{name} did not start: see {self.log.name}")

    def peak_mib(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM"):
                    return int(line.split()[1]) // 1024
        return 0

    def stop(self):
        self.process.terminate()
        self.process.wait()

    def records(self, modem):
        path = os.path.join(self.dir, f"sim-{modem}.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f]


def smtp_source(instances, mails, sessions):
    """smtp-source against each instance at once, its share of mails and sessions."""
    start = time.time()
    runs = [
        subprocess.Popen(
            [SMTP_SOURCE, "-s", str(sessions // len(instances)), "-m", str(mails // len(instances)), "-l", "1024",
             "-f", "bench@example.com", "-t", "+33477858589@sms", f"127.0.0.1:{i.port}"]
        )
        for i in instances
    ]
    for run in runs:
        if run.wait() != 0:
            sys.exit("smtp-source failed")
    return mails / (time.time() - start)


def intake(root, server, mails):
    print(f"== intake: smtp-source -s 64 -m {mails} -l 1024")
    results = {}
    sqlite = Instance(root + "/sqlite", "solo", None, "")
    results["SQLite, one instance"] = (smtp_source([sqlite], mails, 64), [sqlite.peak_mib()])
    sqlite.stop()
    psql(server, "CREATE DATABASE intake1")
    one = Instance(root + "/pg1", "solo", server.rsplit("/", 1)[0] + "/intake1", "")
    results["PostgreSQL, one instance"] = (smtp_source([one], mails, 64), [one.peak_mib()])
    one.stop()
    psql(server, "CREATE DATABASE intake2")
    url = server.rsplit("/", 1)[0] + "/intake2"
    a, b = Instance(root + "/pg2", "a", url, ""), Instance(root + "/pg2", "b", url, "")
    results["PostgreSQL, two instances of one site at once"] = (
        smtp_source([a, b], mails, 64), [a.peak_mib(), b.peak_mib()])
    a.stop(), b.stop()
    for what, (rate, peaks) in results.items():
        print(f"{what}: {rate:.0f} mails/s (peak RSS {', '.join(f'{p} MiB' for p in peaks)})")


def latency(root, server, count):
    print(f"== 250 at instance a -> PDU at instance b's modem: {count} mails, one at a time")
    psql(server, "CREATE DATABASE latency")
    url = server.rsplit("/", 1)[0] + "/latency"
    a = Instance(root + "/lat", "a", url,
                 '[[modem]]\nname = "a1"\nport = "sim"\ntariff = { "+44" = 0.01 }\nsim = { latency_ms = 0 }\n')
    b = Instance(root + "/lat", "b", url,
                 '[[modem]]\nname = "b1"\nport = "sim"\ntariff = { "+33" = 0.01 }\nsim = { latency_ms = 0 }\n')
    time.sleep(2)  # both modems ready, and each instance has read the other's
    accepted = {}
    for n in range(count):
        number = f"+3361{n:07d}"
        with smtplib.SMTP("127.0.0.1", a.port) as smtp:
            smtp.sendmail("bench@example.com", [f"{number}@sms"], f"Subject: {n}\r\n\r\nhello {n}\r\n")
            accepted[number] = time.time()
        # The next once this one went out (the queue stays empty: latency, not backlog).
        deadline = time.time() + 10
        while len(b.records("b1")) <= n and time.time() < deadline:
            time.sleep(0.002)
    records = b.records("b1")
    a.stop(), b.stop()
    delays = sorted(
        datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() - accepted[r["number"]]
        for r in records if r["number"] in accepted
    )
    if len(delays) < count:
        sys.exit(f"only {len(delays)} of {count} sent by b")
    ms = [d * 1000 for d in delays]
    print(f"median {statistics.median(ms):.1f} ms, p90 {ms[int(len(ms) * 0.9)]:.1f} ms, max {ms[-1]:.1f} ms")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=20000)
    parser.add_argument("--latency-mails", type=int, default=200)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="smsgw-site-bench.")
    server = subprocess.run(["contrib/postgres/throwaway", "start", root + "/postgres"],
                            check=True, capture_output=True, text=True).stdout.strip()
    try:
        latency(root, server, args.latency_mails)
        intake(root, server, args.mails)
    finally:
        subprocess.run(["contrib/postgres/throwaway", "stop", root + "/postgres"])
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
