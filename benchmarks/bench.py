"""Run `ram bench --json` for several presets and thread counts, N times each, and print a table of medians.

    python benchmarks/bench.py --presets mnist mnist-translated --threads 1 2 --runs 5
    # versions side by side, interleaved in time: LABEL=SRC[:VAR=VALUE,...], SRC a checkout or . for this one
    python benchmarks/bench.py --version before=/tmp/ram-base --version eager=.:RAM_COMPILE=0 --version compiled=.
    python benchmarks/bench.py --version fp32=. --version bf16=.:--precision=bf16   # items starting -- are flags

The long training runs on the shared machine (any `ram train ...`, also `python -m ram train ...`) are paused
(SIGSTOP) only while one `ram bench` process runs (~30 s) and always resumed (SIGCONT), also on an error, Ctrl-C or
SIGTERM. Other processes cannot be paused, so each run also reports how much CPU they took meanwhile ("others %", of
one core, from /proc/stat minus the benchmark's own CPU time); with --max-others a run above that is repeated (up to 3
times).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time

PAUSE = "ram train "  # the pattern (pkill -f) of the long runs to pause, however they were started


def _signal_runs(sig: str) -> None:
    subprocess.run(["pkill", f"-{sig}", "-f", PAUSE], check=False)


@contextlib.contextmanager
def paused_runs(pause: bool = True):
    """The long runs stopped (SIGSTOP) inside the block, and resumed on leaving it however it is left."""
    if pause:
        _signal_runs("STOP")
    try:
        yield
    finally:
        if pause:
            _signal_runs("CONT")


def _busy_seconds() -> float | None:
    """CPU seconds all processes spent busy so far (Linux), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def parse_version(text: str) -> tuple[str, str | None, dict[str, str], list[str]]:
    """LABEL=SRC[:VAR=VALUE,...] -> (label, src or None for the installed ram, extra environment, extra flags).
    Items that start with -- are `ram bench` flags: bf16=.:--precision=bf16."""
    label, _, rest = text.partition("=")
    src, _, env = rest.partition(":")
    items = [item for item in env.split(",") if item]
    extra = dict(item.split("=", 1) for item in items if not item.startswith("--"))
    flags = [item for item in items if item.startswith("--")]
    return label, (None if src in ("", ".") else src), extra, flags


def bench_once(args: argparse.Namespace, version: tuple, preset: str, threads: int) -> dict:
    label, src, extra, flags = version
    cmd = [sys.executable, "-m", "ram", "bench", "--preset", preset, "--threads", str(threads), "--json",
           "--seconds", str(args.seconds), "--repeats", str(args.repeats), *flags]
    env = {**os.environ, **extra}
    if src:
        env["PYTHONPATH"] = os.path.join(src, "src") + os.pathsep + env.get("PYTHONPATH", "")
    with paused_runs(args.pause):
        busy0, own0, t0 = _busy_seconds(), _children_cpu(), time.monotonic()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        busy1, own1, t1 = _busy_seconds(), _children_cpu(), time.monotonic()
    result = {"label": label, **json.loads(out.strip().splitlines()[-1])}
    if busy0 is not None:
        result["others_cpu_percent"] = round(100 * max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0), 1)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["mnist", "mnist-translated"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--runs", type=int, default=3, help="separate `ram bench` processes per cell")
    p.add_argument("--seconds", type=float, default=4.0, help="timed seconds per repeat inside one `ram bench`")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--version", action="append", default=None, metavar="LABEL=SRC[:VAR=VALUE,...]",
                   help="a code version to benchmark (repeatable; default: this checkout as 'now')")
    p.add_argument("--max-others", type=float, default=None,
                   help="repeat a run (up to 3 times) if other processes took more than this %% of one core")
    p.add_argument("--no-pause", dest="pause", action="store_false", help="do not pause the `ram train` runs")
    p.add_argument("--json", action="store_true", help="also print every raw result as one JSON line")
    args = p.parse_args()

    def interrupted(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    versions = [parse_version(v) for v in (args.version or ["now=."])]
    results: dict[tuple, list[dict]] = {}
    try:
        for _ in range(args.runs):  # versions interleaved, so that a slow spell of the machine hits all of them
            for preset in args.presets:
                for threads in args.threads:
                    for version in versions:
                        for _attempt in range(3):
                            r = bench_once(args, version, preset, threads)
                            if args.max_others is None or r.get("others_cpu_percent", 0) <= args.max_others:
                                break
                        results.setdefault((preset, threads, version[0]), []).append(r)
                        if args.json:
                            print(json.dumps(r), flush=True)
    finally:
        if args.pause:
            _signal_runs("CONT")
    print("| version | preset | threads | train img/s | eval img/s, batch 128 | eval img/s, batch 1000 | "
          "train GFLOP/s | train img/s per run | others % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (preset, threads, label), rs in results.items():
        def med(key):
            values = [r[key] for r in rs if key in r]
            return f"{statistics.median(values):.0f}" if values else "-"

        runs = ", ".join(f"{r['train_images_per_s']:.0f}" for r in rs)
        others = ", ".join(f"{r.get('others_cpu_percent', float('nan')):.0f}" for r in rs)
        gflops = statistics.median(r["train_gflop_per_s"] for r in rs)
        print(f"| {label} | {preset} (g{rs[0]['glimpses']}) | {threads} | {med('train_images_per_s')} | "
              f"{med('eval_images_per_s')} | {med('eval_images_per_s_batch_1000')} | {gflops:.1f} | {runs} | "
              f"{others} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
