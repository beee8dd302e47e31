"""What the edge benchmarks share: a gateway started on a config of their own, and the
SMTP reply reader."""

import os
import re
import subprocess
import sys
import tempfile
import threading


def start(binary, smtp_and_more, name):
    """Starts `binary serve` on a fresh data directory with `smtp_and_more` (TOML after
    `[instance]`); returns the process, its SMTP (host, port), from its log, and the
    folder to remove afterwards."""
    work = tempfile.mkdtemp(prefix=f"smsgw-{name}-")
    config = os.path.join(work, "smsgw.toml")
    with open(config, "w") as f:
        f.write(f'[instance]\ndata_dir = "{work}/data"\n{smtp_and_more}')
    gateway = subprocess.Popen(
        [binary, "serve", "--config", config],
        stderr=subprocess.PIPE,
        env=dict(os.environ, RUST_LOG="warn,smsgw=info"),
    )
    for line in gateway.stderr:
        found = re.search(rb"SMTP listening address=(\S+)", line)
        if found:
            host, port = found.group(1).decode().rsplit(":", 1)
            # Keep reading the log, so that the gateway never blocks on a full pipe.
            threading.Thread(target=lambda: gateway.stderr.read(), daemon=True).start()
            return gateway, (host, int(port)), work
    sys.exit("the gateway did not start")


def reply(sock_file):
    """One SMTP reply's last line, without its line end; None at the end of the stream."""
    while True:
        line = sock_file.readline()
        if not line:
            return None
        if line[3:4] != b"-":
            return line.decode(errors="replace").strip()
