"""`ram serve` under load: several clients at once classify drawn digits and step Catch games against a real server on
127.0.0.1 for a fixed time, while a probe asks for the model list; prints requests/s, p50 and p99 latency and errors
per endpoint, and the server's resident memory (RSS) after warming up and after each round.

    python benchmarks/serve_load.py --clients 8 --seconds 30 --rounds 3

It starts `python -m ram serve` (this interpreter's `ram`: set PYTHONPATH to measure a checkout) on a free port, warms
it up (the model loaded, one request of each kind), runs the rounds and stops the server, whatever happens. It is
bounded: every round lasts --seconds, every request times out after --timeout seconds, and the server is stopped at
the end. Each client keeps one connection open (as a browser tab does) and, in turn, classifies one of 16 drawn digits
(280x280 PNGs, as the page sends its canvas) on --model and plays one move of its Catch game (a new game from a random
start when one ends). Linux only (the memory is read from /proc).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HOST = "127.0.0.1"
PROBE_EVERY = 0.2  # seconds between the probe's requests for the model list


def drawings(n: int, seed: int = 0) -> list[bytes]:
    """n canvases as the page sends them: 280x280, a white stroke of 3-5 random points on black, PNG."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        image = Image.new("L", (280, 280))
        points = [tuple(int(v) for v in p) for p in rng.integers(50, 230, (int(rng.integers(3, 6)), 2))]
        ImageDraw.Draw(image).line(points, fill=255, width=20, joint="curve")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def start_state(rng: np.random.Generator, size: int = 24) -> dict:
    return {"row": 0, "ball_x": float(rng.uniform(0, size - 1)), "dx": float(rng.uniform(-1, 1)),
            "paddle_x": int(rng.integers(0, size - 1))}


@dataclass
class Tally:
    """Latencies (seconds) of the answered requests of one endpoint, and the failures (a status other than 200, or no
    answer in time), with the first few messages."""

    seconds: list[float] = field(default_factory=list)
    errors: int = 0
    messages: list[str] = field(default_factory=list)

    def failed(self, message: str) -> None:
        self.errors += 1
        if len(self.messages) < 3:
            self.messages.append(message)


class Client:
    """One keep-alive connection to the server, reopened after a failure."""

    def __init__(self, port: int, timeout: float):
        self.port, self.timeout, self.conn = port, timeout, None

    def ask(self, method: str, path: str, tally: Tally, body: bytes | None = None, kind: str | None = None):
        """The answer's JSON, its latency added to `tally`; None (a failure in `tally`) if it failed."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        headers = {"Content-Type": kind} if kind else {}
        start = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as e:
            tally.failed(f"{path}: {type(e).__name__}: {e}")
            self.conn.close()
            self.conn = None
            return None
        elapsed = time.perf_counter() - start
        if response.status != 200:
            tally.failed(f"{path}: HTTP {response.status}: {data[:200]!r}")
            return None
        tally.seconds.append(elapsed)
        return json.loads(data)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(port: int, args, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "ram", "serve", "--port", str(port), "--pretrained", args.model]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            conn.request("GET", "/api/models")
            conn.getresponse().read()
            return server
        except (OSError, http.client.HTTPException):
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit(f"ram serve did not start:\n{log.read_text()}") from None
            time.sleep(0.2)
        finally:
            conn.close()


def play(port: int, args, digits: list[bytes], seed: int, stop: float, tallies: dict[str, Tally]) -> None:
    """One client until `stop` (time.monotonic()): classify a digit, play a move, and again."""
    client, rng = Client(port, args.timeout), np.random.default_rng(seed)
    state, i = start_state(rng), 0
    while time.monotonic() < stop:
        client.ask("POST", f"/api/classify?model={args.model}&seed={i}", tallies["classify"],
                   digits[(seed + i) % len(digits)], "application/octet-stream")
        move = {"state": state, "move": int(rng.integers(0, 3))}
        answer = client.ask("POST", "/api/catch/step", tallies["catch/step"], json.dumps(move).encode(),
                            "application/json")
        state = start_state(rng) if answer is None or answer["done"] else answer["state"]
        i += 1


def probe(port: int, args, stop: float, tally: Tally) -> None:
    client = Client(port, args.timeout)
    while time.monotonic() < stop:
        client.ask("GET", "/api/models", tally)
        time.sleep(PROBE_EVERY)


def one_round(port: int, args, digits: list[bytes], round_: int) -> dict[str, Tally]:
    tallies = {"classify": Tally(), "catch/step": Tally(), "models (probe)": Tally()}
    stop = time.monotonic() + args.seconds
    threads = [threading.Thread(target=play, args=(port, args, digits, 1000 * round_ + c, stop, tallies))
               for c in range(args.clients)]
    threads.append(threading.Thread(target=probe, args=(port, args, stop, tallies["models (probe)"])))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tallies


def row(round_: int, name: str, tally: Tally, seconds: float) -> str:
    ms = np.array(tally.seconds) * 1000
    p50, p99 = (f"{np.percentile(ms, q):.1f}" for q in (50, 99)) if ms.size else ("-", "-")
    return f"| {round_} | {name} | {ms.size:,} | {ms.size / seconds:.1f} | {p50} | {p99} | {tally.errors} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="clients at once, each with its own connection")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of a round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the memory is read after each")
    parser.add_argument("--model", default="mnist-g6", help="the shipped model the digits are classified on")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a request may take before it fails")
    args = parser.parse_args()

    port, digits = free_port(), drawings(16)
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve_load-{port}.log"
    server = start_server(port, args, log)
    try:
        warm = Client(port, 60)
        for path, body, kind in ((f"/api/classify?model={args.model}", digits[0], "application/octet-stream"),
                                 ("/api/catch/step", json.dumps({"state": start_state(np.random.default_rng(0)),
                                                                 "move": 1}).encode(), "application/json")):
            if warm.ask("POST", path, tally := Tally(), body, kind) is None:
                raise SystemExit(f"warm-up failed: {tally.messages}")
        memory = [rss_mb(server.pid)]
        lines = [f"ram serve under load: {args.clients} clients, {args.rounds} rounds of {args.seconds:g} s, "
                 f"classify on {args.model}, {os.cpu_count()} CPUs; load average before: "
                 f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}", "",
                 "| round | endpoint | requests | per s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
        failures = []
        for r in range(1, args.rounds + 1):
            tallies = one_round(port, args, digits, r)
            memory.append(rss_mb(server.pid))
            answered = sum(len(t.seconds) for name, t in tallies.items() if name != "models (probe)")
            lines += [row(r, name, t, args.seconds) for name, t in tallies.items()]
            lines.append(f"| {r} | all clients | {answered:,} | {answered / args.seconds:.1f} | | | |")
            failures += [m for t in tallies.values() for m in t.messages]
        after = [f"after round {i} {m:.0f}" for i, m in enumerate(memory[1:], 1)]
        lines += ["", "server RSS MB: " + ", ".join([f"warm {memory[0]:.0f}", *after])]
        if failures:
            lines += ["", "first failures:"] + [f"  {m}" for m in failures[:10]]
        print("\n".join(lines))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
