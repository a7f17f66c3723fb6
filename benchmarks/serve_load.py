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

With --hostile N, N more clients attack the server through every round (issue 61), each in turn: a progressive-JPEG
scan bomb uploaded by a client that leaves at once, a TIFF tile bomb, a move holding a 310-digit integer, and 50
pipelined games never read (the connection held until the server closes it). The server's RSS is read every 0.2 s, and
the run fails (exit code 1) if valid classify requests have a p99 over --max-p99 ms, if any valid request fails, or if
the RSS passes --max-rss MB:

    python benchmarks/serve_load.py --clients 4 --hostile 2 --seconds 30 --rounds 1 --max-p99 500 --max-rss 1024
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
HOLD = 15.0  # seconds an attacker holds a connection whose answers it never reads


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


def hostile(port: int, stop: float, tally: Tally) -> None:
    """One attacker until `stop`: a scan bomb from a client that leaves, a tile bomb, a 310-digit integer, and 50
    pipelined games never read. tally counts its attacks, and as failures the answers that were not what they should
    be (a 4xx for the bombs and the integer)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from hostile_files import scan_bomb, tile_bomb

    bombs = scan_bomb(size=200_000), tile_bomb()
    head = b"POST /api/classify?model=mnist-g6 HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n" \
        b"Content-Length: %d\r\n\r\n"
    while time.monotonic() < stop:
        with socket.create_connection((HOST, port), timeout=10) as sock:  # a scan bomb, and gone before the answer
            sock.sendall(head % (HOST.encode(), len(bombs[0])) + bombs[0])
        client = Client(port, 10)
        for body, kind, path in ((bombs[1], "application/octet-stream", "/api/classify?model=mnist-g6"),
                                 (b'{"state": {"row": 0, "ball_x": 1' + b"0" * 309 + b', "dx": 0, "paddle_x": 0}, '
                                  b'"move": 1}', "application/json", "/api/catch/step")):
            start = time.perf_counter()
            try:
                client.conn = client.conn or http.client.HTTPConnection(HOST, port, timeout=10)
                client.conn.request("POST", path, body=body, headers={"Content-Type": kind})
                response = client.conn.getresponse()
                response.read()
                if not 400 <= response.status < 500:
                    tally.failed(f"{path}: a hostile request got HTTP {response.status}")
                else:
                    tally.seconds.append(time.perf_counter() - start)
            except (OSError, http.client.HTTPException) as e:
                tally.failed(f"{path}: {type(e).__name__}: {e}")
                client.conn.close()
                client.conn = None
        with socket.create_connection((HOST, port), timeout=30) as sock:  # 50 games asked for, none read,
            sock.sendall(b"GET /api/catch/game?seed=1 HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode() * 50)
            time.sleep(max(0.0, min(HOLD, stop - time.monotonic())))  # the connection held longer than the server
            # waits for a reader (WRITE_TIMEOUT, 10 s)


def watch_rss(pid: int, stop: float, peaks: list[float]) -> None:
    while time.monotonic() < stop:
        peaks.append(rss_mb(pid))
        time.sleep(0.2)


def probe(port: int, args, stop: float, tally: Tally) -> None:
    client = Client(port, args.timeout)
    while time.monotonic() < stop:
        client.ask("GET", "/api/models", tally)
        time.sleep(PROBE_EVERY)


def one_round(port: int, args, digits: list[bytes], round_: int, pid: int, peaks: list[float]) -> dict[str, Tally]:
    tallies = {"classify": Tally(), "catch/step": Tally(), "models (probe)": Tally()}
    if args.hostile:
        tallies["hostile (4xx)"] = Tally()
    stop = time.monotonic() + args.seconds
    threads = [threading.Thread(target=play, args=(port, args, digits, 1000 * round_ + c, stop, tallies))
               for c in range(args.clients)]
    threads.append(threading.Thread(target=probe, args=(port, args, stop, tallies["models (probe)"])))
    threads += [threading.Thread(target=hostile, args=(port, stop, tallies["hostile (4xx)"]))
                for _ in range(args.hostile)]
    threads.append(threading.Thread(target=watch_rss, args=(pid, stop, peaks)))
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
    parser.add_argument("--hostile", type=int, default=0, help="attackers beside the clients (see above)")
    parser.add_argument("--max-p99", type=float, default=None, help="fail if valid classify's p99 passes this (ms)")
    parser.add_argument("--max-rss", type=float, default=None, help="fail if the server's RSS passes this (MB)")
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
        failures, peaks, classify, errors = [], [], [], 0
        for r in range(1, args.rounds + 1):
            tallies = one_round(port, args, digits, r, server.pid, peaks)
            memory.append(rss_mb(server.pid))
            answered = sum(len(t.seconds) for name, t in tallies.items() if name not in ("models (probe)",
                                                                                      "hostile (4xx)"))
            lines += [row(r, name, t, args.seconds) for name, t in tallies.items()]
            lines.append(f"| {r} | all clients | {answered:,} | {answered / args.seconds:.1f} | | | |")
            failures += [m for t in tallies.values() for m in t.messages]
            classify += tallies["classify"].seconds
            errors += sum(t.errors for name, t in tallies.items() if name != "hostile (4xx)")
        after = [f"after round {i} {m:.0f}" for i, m in enumerate(memory[1:], 1)]
        lines += ["", "server RSS MB: " + ", ".join([f"warm {memory[0]:.0f}", *after, f"peak {max(peaks):.0f}"])]
        if failures:
            lines += ["", "first failures:"] + [f"  {m}" for m in failures[:10]]
        p99 = float(np.percentile(np.array(classify) * 1000, 99)) if classify else float("inf")
        broken = [why for why, bad in (
            (f"valid classify p99 {p99:.0f} ms > {args.max_p99:g}", args.max_p99 is not None and p99 > args.max_p99),
            (f"{errors} valid request(s) failed", args.max_p99 is not None and errors > 0),
            (f"server RSS peaked at {max(peaks):.0f} MB > {args.max_rss:g}",
             args.max_rss is not None and max(peaks) > args.max_rss)) if bad]
        lines += ["", "FAILED: " + "; ".join(broken) if broken else "bounds held" if args.max_p99 or args.max_rss
                  else ""]
        print("\n".join(lines))
        if broken:
            sys.exit(1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
