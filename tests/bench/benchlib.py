#!/usr/bin/env python3
"""Helpers for tests/bench/compare.sh (Python 3 standard library only).

Subcommands:
  ports N                      print N distinct free TCP ports on 127.0.0.1, one per line
  wait-port PORT [SECS [PID]]  exit 0 once 127.0.0.1:PORT accepts a connection, 1 on timeout
                               or as soon as PID has exited
  wrk-parse FILE               turn wrk --latency output into key=value lines
  idle ...                     hold N idle connections through a proxy and report its RSS
  summarize RAW.tsv ...        medians and ratios to HAProxy, as text and Markdown

The raw results file is tab-separated: round, proxy, metric, value.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import select
import socket
import statistics
import sys
import time
from collections import defaultdict

HOST = "127.0.0.1"
TCP_ESTABLISHED = "01"


# --------------------------------------------------------------------------- ports

def cmd_ports(args: argparse.Namespace) -> int:
    # Hold every socket open until all are bound, so the ports are distinct.
    socks = []
    try:
        for _ in range(args.count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        for s in socks:
            print(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return 0


def _running(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmd_wait_port(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and _running(args.pid):
        try:
            with socket.create_connection((HOST, args.port), timeout=0.5):
                return 0
        except OSError:
            time.sleep(0.05)
    return 1


# --------------------------------------------------------------------------- wrk

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _to_ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unparsable latency {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(text: str) -> dict[str, float]:
    """Requests, duration, req/s, p99 (ms) and error counts from wrk's report."""
    out: dict[str, float] = {"requests": 0, "seconds": 0, "rps": 0, "p99_ms": -1,
                             "socket_errors": 0, "non2xx": 0}
    m = re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s|m|h)", text)
    if m:
        out["requests"] = int(m.group(1))
        out["seconds"] = _to_ms(m.group(2) + m.group(3)) / 1e3
    m = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"^\s*99%\s+(\S+)", text, re.M)
    if m:
        out["p99_ms"] = _to_ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(g) for g in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    return out


def cmd_wrk_parse(args: argparse.Namespace) -> int:
    with open(args.file, encoding="utf-8", errors="replace") as f:
        for key, value in parse_wrk(f.read()).items():
            print(f"{key}={int(value)}" if float(value).is_integer() else f"{key}={value:.10g}")
    return 0


# --------------------------------------------------------------------------- idle

def _established_to(ports: set[int]) -> int:
    """Established IPv4 sockets on this host whose remote port is one of `ports`:
    the proxy's side of its backend connections."""
    n = 0
    with open("/proc/net/tcp", encoding="ascii") as f:
        next(f)
        for line in f:
            fields = line.split(None, 4)
            if fields[3] == TCP_ESTABLISHED and int(fields[2].rsplit(":", 1)[1], 16) in ports:
                n += 1
    return n


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _fd_count(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


def _wait_for(predicate, seconds: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def cmd_idle(args: argparse.Namespace) -> int:
    """Open `count` idle connections to the proxy in batches; after each batch wait
    until the proxy has connected that many to the backends (so it has accepted them
    and holds both sides). Then read the proxy's RSS, check that none of our sockets
    was closed by the proxy, close everything and wait for the backend side to drain."""
    backend_ports = {int(p) for p in args.backend_ports.split(",")}
    pids = [int(p) for p in args.pids.split(",")]
    base = _established_to(backend_ports)
    base_fds = _fd_count(pids)
    rss_before = _rss_kib(pids)
    deadline = time.monotonic() + args.timeout
    socks: list[socket.socket] = []
    connect_failed = 0
    status = "ok"
    try:
        while len(socks) < args.count:
            batch = min(args.batch, args.count - len(socks))
            for _ in range(batch):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex((HOST, args.port))
                if err not in (0, errno.EINPROGRESS):
                    connect_failed += 1
                    s.close()
                    continue
                socks.append(s)
            # Cheap test first: the proxy holds two descriptors per connection.
            want_fds = base_fds + 2 * len(socks)
            left = deadline - time.monotonic()
            reached = _wait_for(lambda: (_fd_count(pids) >= want_fds
                                         or not all(_running(p) for p in pids)), max(left, 0))
            if not all(_running(p) for p in pids):
                print("status=proxy-exited")
                return 1
            if not reached:
                status = "timeout"
                break
        # Then the exact one: that many established connections to the backends.
        want = base + len(socks)
        left = max(deadline - time.monotonic(), 1.0)
        if not _wait_for(lambda: _established_to(backend_ports) >= want, left, interval=0.2):
            status = "timeout"
        held_backend = _established_to(backend_ports) - base
        time.sleep(args.settle)
        if not all(_running(p) for p in pids):
            print("status=proxy-exited")
            return 1
        rss = _rss_kib(pids)
        # A socket that is readable now has seen EOF or RST from the proxy: we sent nothing.
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLIN)
        closed_by_proxy = len(poller.poll(0))
    finally:
        for s in socks:
            s.close()
    drained = _wait_for(lambda: _established_to(backend_ports) <= base, args.drain_timeout,
                        interval=0.2)
    print(f"status={status}")
    print(f"opened={len(socks)}")
    print(f"connect_failed={connect_failed}")
    print(f"held_backend={held_backend}")
    print(f"closed_by_proxy={closed_by_proxy}")
    print(f"rss_before_kib={rss_before}")
    print(f"rss_kib={rss}")
    # Backend connections still open after every client closed: the proxy did not
    # pass the close on (0 when drained).
    print(f"leftover={0 if drained else max(_established_to(backend_ports) - base, 0)}")
    return 0


# --------------------------------------------------------------------------- summary

# metric key -> (label, decimals)
METRICS = [
    ("ka_rps", "keep-alive throughput (req/s)", 0),
    ("ka_cpu_us_per_req", "CPU per keep-alive request (µs)", 2),
    ("ka_p99_ms", "p99 latency, keep-alive (ms)", 2),
    ("ka_cpu_pct", "proxy CPU use, keep-alive (% of its core)", 0),
    ("cl_cps", "new-connection throughput (conn/s)", 0),
    ("cl_cpu_us_per_conn", "CPU per new connection (µs)", 1),
    ("cl_cpu_pct", "proxy CPU use, new connections (% of its core)", 0),
    ("bulk_mbps", "bulk throughput (MB/s)", 0),
    ("bulk_cpu_ms_per_mb", "CPU per MB of bulk (ms)", 3),
    ("idle_base_rss_mib", "RSS before the first idle run (MiB)", 1),
    ("idle_rss_mib", "RSS holding {idle} idle connections (MiB)", 1),
    ("idle_kib_per_conn", "RSS per idle connection over that (KiB)", 2),
]
ERROR_METRICS = ["ka_errors", "cl_errors", "bulk_errors", "idle_errors"]


def _fmt(value: float | None, decimals: int) -> str:
    if value is None:
        return "–"
    return f"{value:,.{decimals}f}"


def cmd_summarize(args: argparse.Namespace) -> int:
    proxies = args.proxies.split(",")
    data: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    with open(args.raw, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            rnd, proxy, metric, value = line.rstrip("\n").split("\t")
            data[(proxy, metric)][int(rnd)] = float(value)

    ref = "haproxy" if "haproxy" in proxies else proxies[0]
    others = [p for p in proxies if p != ref]

    def median(proxy: str, metric: str) -> float | None:
        values = list(data.get((proxy, metric), {}).values())
        return statistics.median(values) if values else None

    def ratio(proxy: str, metric: str) -> float | None:
        # Median of the per-round ratios: each round ran the proxies back to back,
        # so pairing within a round cancels slow drifts of the machine.
        mine, theirs = data.get((proxy, metric), {}), data.get((ref, metric), {})
        pairs = [mine[r] / theirs[r] for r in mine if r in theirs and theirs[r] > 0]
        return statistics.median(pairs) if pairs else None

    header = ["metric", *proxies, *(f"{p}/{ref}" for p in others)]
    rows = []
    for key, label, decimals in METRICS:
        if not any((p, key) in data for p in proxies):
            continue
        row = [label.format(idle=f"{args.idle:,}")]
        row += [_fmt(median(p, key), decimals) for p in proxies]
        row += [_fmt(ratio(p, key), 2) for p in others]
        rows.append(row)
    errors_row = ["harness-visible errors (sum over rounds)"]
    for p in proxies:
        errors_row.append(f"{sum(sum(data.get((p, m), {}).values()) for m in ERROR_METRICS):g}")
    errors_row += [""] * len(others)
    rows.append(errors_row)

    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def text_line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    print(text_line(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(text_line(r))

    if args.out:
        rounds = sorted({r for series in data.values() for r in series})
        md = [f"# fulcrum vs HAProxy vs nginx stream — {args.title}", ""]
        if args.notes:
            with open(args.notes, encoding="utf-8") as f:
                md += [f.read().rstrip(), ""]
        md.append(f"Medians over {len(rounds)} round(s); ratio columns are the median of "
                  f"per-round ratios to {ref} (lower is better for CPU, latency and RSS).")
        md.append("")
        md.append("| " + " | ".join(header) + " |")
        md.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for r in rows:
            md.append("| " + " | ".join(r) + " |")
        md.append("")
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("\n".join(md))
    return 0


# --------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("ports")
    p.add_argument("count", type=int)
    p.set_defaults(func=cmd_ports)

    p = sub.add_parser("wait-port")
    p.add_argument("port", type=int)
    p.add_argument("seconds", type=float, nargs="?", default=10.0)
    p.add_argument("pid", type=int, nargs="?", help="give up early if this process exits")
    p.set_defaults(func=cmd_wait_port)

    p = sub.add_parser("wrk-parse")
    p.add_argument("file")
    p.set_defaults(func=cmd_wrk_parse)

    p = sub.add_parser("idle")
    p.add_argument("--port", type=int, required=True, help="proxy listen port")
    p.add_argument("--backend-ports", required=True, help="comma-separated")
    p.add_argument("--pids", required=True, help="proxy PIDs whose RSS is summed")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--settle", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--drain-timeout", type=float, default=20.0)
    p.set_defaults(func=cmd_idle)

    p = sub.add_parser("summarize")
    p.add_argument("raw")
    p.add_argument("--proxies", required=True)
    p.add_argument("--idle", type=int, required=True)
    p.add_argument("--out")
    p.add_argument("--title", default="")
    p.add_argument("--notes", help="Markdown file inserted above the table")
    p.set_defaults(func=cmd_summarize)

    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
