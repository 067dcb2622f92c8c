"""`make bench`: time hull against its peer, scenario by scenario, on this machine in one run.

Each scenario (bench/scenarios.py) runs hull's command and the peer's alternately, so drift in
the machine's load hits both alike: --warmup untimed rounds, then --runs timed ones. Reported:
the median and minimum wall-clock time of the whole command, and the ratio of medians hull/peer.

Usage: bench/run.py [--runs N] [--warmup N] [--only NAME[,NAME...]] [--list]
(`--only footprint` prints only the memory report.)
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import footprint as bench_footprint
from hull.testing import remove_tree
from scenarios import SCENARIOS, Scenario, Side

RUN_TIMEOUT = 120.0
# Not a timed scenario: the memory report of bench/footprint.py, printed after the table.
FOOTPRINT = "footprint"


class RunFailed(Exception):
    """A timed command failed; the message says how, with the tail of its stderr."""


@dataclass
class Result:
    scenario: Scenario
    sides: list[Side]
    times: dict[Side, list[float]] = field(default_factory=lambda: {"hull": [], "peer": []})
    errors: dict[str, str] = field(default_factory=dict)  # side, or "scenario" for setup etc. -> what went wrong


def timed(argv: list[str]) -> float:
    """Wall-clock seconds of one command, as its caller sees it; RunFailed if it fails."""
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=RUN_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RunFailed(f"`{' '.join(argv)}`: {e}") from None
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-15:] or ["(no stderr)"]
        raise RunFailed(f"`{' '.join(argv)}` exited {done.returncode}:\n" + "\n".join("    " + t for t in tail))
    return elapsed


def measure(sc: Scenario, runs: int, warmup: int) -> Result:
    """Run one scenario: hull and peer alternately; a side that fails is reported and dropped."""
    sides: list[Side] = ["hull", "peer"] if shutil.which(sc.peer) else ["hull"]
    result = Result(sc, sides)
    work = Path(tempfile.mkdtemp(prefix=f"hull-bench-{sc.name}-"))
    try:
        sc.setup(work)
        for i in range(warmup + runs):
            for side in sides:
                if side in result.errors:
                    continue
                run_id = f"hull-bench-{uuid.uuid4().hex[:12]}"
                try:
                    sc.prepare(side, run_id)
                    elapsed = timed(sc.command(side, run_id))
                except RunFailed as e:
                    result.errors[side] = str(e)
                    continue
                finally:
                    sc.after(side, run_id)
                if i >= warmup:
                    result.times[side].append(elapsed)
            if all(side in result.errors for side in sides):
                break
    except Exception as e:  # a broken scenario is reported like a failed run, and the next one still runs
        result.errors["scenario"] = f"{type(e).__name__}: {e}"
    finally:
        try:
            sc.teardown()
            remove_tree(work)
        except Exception as e:
            print(f"warning: {sc.name}: cleanup failed: {e}", file=sys.stderr)
    return result


def ms(times: list[float], f: str) -> str:
    if not times:
        return "-"
    return f"{1000 * (statistics.median(times) if f == 'median' else min(times)):.1f}"


def row(r: Result) -> list[str]:
    sc = r.scenario
    cells = [sc.name, sc.peer]
    for side in ("hull", "peer"):
        if side == "peer" and side not in r.sides:
            cells += ["not installed", "-"]
        elif "scenario" in r.errors or side in r.errors:
            cells += ["FAILED", "-"]
        else:
            cells += [ms(r.times[side], "median"), ms(r.times[side], "min")]
    hull, peer = r.times["hull"], r.times["peer"]
    ok = hull and peer and not r.errors
    cells.append(f"{statistics.median(hull) / statistics.median(peer):.2f}x" if ok else "-")
    return cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=15, help="timed runs of each side (default %(default)s)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default %(default)s)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these scenarios")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    a = ap.parse_args(argv)
    if a.list:
        for sc in SCENARIOS:
            print(f"{sc.name:24} vs {sc.peer:8} {(type(sc).__doc__ or '').strip().splitlines()[0]}")
        return 0
    names = {n for arg in a.only for n in arg.split(",") if n}
    unknown = names - {sc.name for sc in SCENARIOS} - {FOOTPRINT}
    if unknown:
        ap.error(f"unknown scenario {', '.join(sorted(unknown))}; known: {', '.join(sc.name for sc in SCENARIOS)}")
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    chosen = [sc for sc in SCENARIOS if not names or sc.name in names]
    footprint = not names or FOOTPRINT in names

    header = ["scenario", "peer", "hull median", "hull min", "peer median", "peer min", "hull/peer"]
    widths = [max(len(header[0]), *(len(sc.name) for sc in chosen)), max(len(header[1]), 13)] + [
        max(len(h), 13) for h in header[2:]
    ]

    def line(cells: list[str]) -> str:
        # Names left-aligned, numbers right-aligned.
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs)

    print(f"wall-clock ms of the whole command; {a.runs} runs of each side after {a.warmup} warm-up, alternating")
    print(line(header))
    results = []
    for sc in chosen:
        r = measure(sc, a.runs, a.warmup)
        results.append(r)
        print(line(row(r)), flush=True)
    for r in results:
        if r.scenario.payload is not None and not r.errors:
            size, files = r.scenario.payload
            for who in r.sides:
                secs = statistics.median(r.times[who])
                print(f"{r.scenario.name}: {who} {size / secs / 1e6:.0f} MB/s, {files / secs:.0f} files/s (median)")
    if footprint:
        for text in bench_footprint.report():
            print(f"{FOOTPRINT}: {text}")
    failed = False
    for r in results:
        if "peer" not in r.sides:
            print(f"{r.scenario.name}: peer not installed ({r.scenario.peer} is not on PATH); only hull was timed")
        for side, error in r.errors.items():
            failed = True
            print(f"{r.scenario.name}: {side} failed: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
