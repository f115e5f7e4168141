"""Run the benchmark of issue 4 and write its report.

    python -m benchmarks.harness [--profile full|quick|smoke] [--reps N] [--columns a,b] [--out FILE]

Columns: direct (the limit), trioproxy, jhsingle-native-proxy 0.8.3 with and without
``--progressive``. The proxy runs on one core, everything else on the other. Prints the report and
writes it to ``--out`` (``benchmarks/RESULTS.md`` by default), with the raw readings as JSON next to
the logs in ``benchmarks/.work/``. Exits 0 whatever the figures; non-zero only if the harness itself
could not run (a column failing a scenario is reported, not fatal).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import dataclasses
import datetime
import json
import os
import resource
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from benchmarks import nginx, profiles, report, sysinfo
from benchmarks.columns import COLUMNS, PREFIX, ROOT, WORK, Launcher, Target
from benchmarks.procs import ProcessSet
from benchmarks.scenarios import Context, Scenario, all_scenarios, bare_upstream

#: Upper bound of a whole run, per profile (seconds).
DEADLINE_S = {"full": 3600.0, "quick": 600.0, "smoke": 120.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=sorted(profiles.PROFILES), default="quick")
    parser.add_argument("--reps", type=int, help="repetitions (default: the profile's)")
    parser.add_argument("--columns", help=f"comma-separated, from {', '.join(COLUMNS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--work", type=Path, default=WORK, help="logs, data files, raw JSON")
    parser.add_argument("--proxy-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--no-nginx", action="store_true", help="the Python upstream serves everything")
    parser.add_argument("--no-wrk", action="store_true", help="small GETs from the asyncio generator")
    parser.add_argument("--note", action="append", default=[], help="a line for the report's notes (repeatable)")
    parser.add_argument("--only", help="comma-separated scenario names (e.g. ws1,wsN,wsbig,idle_ws): a quick A/B "
                                       "of those alone (the report says so); default: every scenario")
    return parser.parse_args(argv)


def prepare_data(folder: Path, profile: profiles.Profile) -> None:
    """The files the app serves: ``small.txt`` and one sparse (all-zero, in-memory) file per size."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "small.txt").write_bytes(b"x" * (profile.small_size - 1) + b"\n")
    for size in {profile.dl_small[0], profile.dl_big[0], profile.upload[0], profile.stream_size}:
        path = folder / f"{size}.bin"
        if not path.exists() or path.stat().st_size != size:
            with path.open("wb") as f:
                f.truncate(size)


def raise_fd_limit() -> None:
    """Idle websockets need thousands of descriptors in the proxy, the app and the harness."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def cores(args: argparse.Namespace, notes: list[str]) -> tuple[int | None, int | None]:
    available = os.sched_getaffinity(0)
    if {args.proxy_core, args.load_core} <= available and args.proxy_core != args.load_core:
        os.sched_setaffinity(0, {args.load_core})
        return args.proxy_core, args.load_core
    notes.append(f"cores {sorted(available)}: no pinning (needs two distinct cores); figures are less meaningful")
    return None, None


def _short(argv: list[str]) -> str:
    """A command line for the report, with paths relative to the repository."""
    return shlex.join(argv).replace(str(ROOT) + "/", "").replace(str(Path.home()), "~")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}"[:200] if text else type(exc).__name__


def _progress(rep: int, reps: int, scenario: str, column: str, readings: dict[str, object]) -> None:
    shown = ", ".join(f"{k}={report.fmt(v)}" for k, v in readings.items() if v is not None and not k.endswith("_busy"))
    print(f"[{rep + 1}/{reps}] {scenario:<18} {column:<21} {shown}", flush=True)


class Harness:
    """One run: the columns to measure, the tools at hand, the readings."""

    def __init__(self, args: argparse.Namespace) -> None:
        columns = tuple(args.columns.split(",")) if args.columns else None
        self.profile = profiles.get(args.profile, reps=args.reps, columns=columns)
        self.notes: list[str] = list(args.note)
        self.columns = [name for name in self.profile.columns if self._usable(name)]
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.procs = ProcessSet(args.work / "runs" / f"{stamp}-{self.profile.name}" / "logs")
        atexit.register(self.procs.stop_all)
        self.scenarios = all_scenarios(self.profile)
        if args.only:
            wanted = set(args.only.split(","))
            known = {s.name for s in self.scenarios}
            if wanted - known:
                raise SystemExit(f"--only: unknown scenario(s) {', '.join(sorted(wanted - known))} "
                                 f"(known: {', '.join(sorted(known))})")
            self.scenarios = [s for s in self.scenarios if s.name in wanted]
            self.notes.append(f"only the scenarios {', '.join(s.name for s in self.scenarios)}")
        self.results = report.Results(self.columns, [m for s in self.scenarios for m in s.metrics(self.profile)])
        proxy_core, load_core = cores(args, self.notes)
        use_nginx = not args.no_nginx and nginx.binary() is not None
        has_wrk = not args.no_wrk and shutil.which("wrk") is not None
        has_curl = shutil.which("curl") is not None
        for missing, what in ((not use_nginx, "nginx: the Python upstream serves the static files too"),
                              (not has_wrk, "wrk: small GETs come from the asyncio generator"),
                              (not has_curl, "curl: no downloads or uploads")):
            if missing:
                self.notes.append(f"without {what}")
        data = args.work / "data"
        prepare_data(data, self.profile)
        self.launcher = Launcher(self.procs, data, proxy_core, load_core, use_nginx)
        self.ctx = Context(self.profile, data, has_wrk, has_curl)

    def _usable(self, name: str) -> bool:
        why = COLUMNS[name].missing() if name in COLUMNS else f"unknown (known: {', '.join(COLUMNS)})"
        if why:
            self.notes.append(f"column {name} left out: {why}")
        return not why

    async def run(self) -> None:
        """Every repetition; the columns' order rotates by one each time."""
        for rep in range(self.profile.reps):
            k = rep % len(self.columns)
            await self.repetition(rep, self.columns[k:] + self.columns[:k])

    async def repetition(self, rep: int, order: list[str]) -> None:
        """The scenarios on the usual app stack (nginx in front), then those on the bare upstream."""
        usual = [s for s in self.scenarios if not bare_upstream(s)]
        bare = [s for s in self.scenarios if bare_upstream(s)]
        if usual:
            await self.phase(rep, order, usual, self.launcher)
        if bare:
            await self.phase(rep, order, bare, dataclasses.replace(self.launcher, use_nginx=False))

    async def phase(self, rep: int, order: list[str], scenarios: list[Scenario], launcher: Launcher) -> None:
        """Start the columns that run any of ``scenarios`` on ``launcher``'s app stack, run them, stop them."""
        targets: dict[str, Target] = {}
        try:
            for name in order:
                if not any(COLUMNS[name].runs(s.name) for s in scenarios):
                    continue
                try:
                    targets[name] = await launcher.start(COLUMNS[name])
                except Exception as exc:  # reported; the other columns go on
                    if launcher is self.launcher:
                        self.results.fail(rep, name, "start", ["startup"], _describe(exc))
                    else:
                        keys = [m.key for s in scenarios for m in s.metrics(self.profile)]
                        self.results.fail(rep, name, "start (bare upstream)", keys, _describe(exc))
            for scenario in scenarios:
                keys = [m.key for m in scenario.metrics(self.profile)]
                for name in (n for n in order if n in targets and COLUMNS[n].runs(scenario.name)):
                    await self.measure(rep, scenario, targets[name], keys)
        finally:
            for target in targets.values():
                target.process.stop(grace=2.0)

    async def measure(self, rep: int, scenario: Scenario, target: Target, keys: list[str]) -> None:
        name = target.column.name
        if not target.process.running():
            self.results.fail(rep, name, scenario.name, keys, "the process has exited")
            return
        try:
            readings = await asyncio.wait_for(scenario.run(self.ctx, target), self.profile.scenario_timeout)
        except Exception as exc:  # reported; the run goes on
            self.results.fail(rep, name, scenario.name, keys, _describe(exc))
            return
        self.results.add(name, readings)
        _progress(rep, self.profile.reps, scenario.name, name, readings)

    def commands(self) -> list[tuple[str, str]]:
        rows = [(COLUMNS[n].title, _short(self.launcher.command_line(COLUMNS[n]))) for n in self.columns]
        return [*rows,
                ("environment of the proxies", f"JUPYTERHUB_SERVICE_PREFIX={PREFIX}/, no other JUPYTERHUB_* variable"),
                ("small GETs", f"wrk -t1 -cN -d{max(1, round(self.profile.get_seconds))}s --timeout 10s --latency URL"),
                ("downloads", "curl -s -w '%{http_code} %{size_download} …' -o /dev/null URL [-o /dev/null URL …]"),
                ("uploads", "curl -s -X POST -H 'Expect:' -H 'Content-Type: application/octet-stream' -T FILE "
                            "-o /dev/null URL"),
                ("logs of this run", _short([str(self.procs.logs)]))]


async def main_async(args: argparse.Namespace) -> Harness:
    harness = Harness(args)
    deadline = DEADLINE_S[harness.profile.name]
    try:
        async with asyncio.timeout(deadline):
            await harness.run()
    except TimeoutError:
        harness.notes.append(f"the run hit its deadline of {deadline:.0f} s: figures are partial")
    finally:
        harness.procs.stop_all()
    return harness


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise_fd_limit()
    load_before, started = sysinfo.load_average(), time.monotonic()
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    harness = asyncio.run(main_async(args))
    run_info = [
        ("date", when),
        ("profile", f"{harness.profile.name}, {harness.profile.reps} repetition(s), "
                    f"{time.monotonic() - started:.0f} s in all"),
        ("command", _short([sys.executable, "-m", "benchmarks.harness", *argv])),
        ("load average (1, 5, 15 min) before / after", f"{load_before} / {sysinfo.load_average()}"),
    ]
    text = report.document(harness.results, profile=harness.profile, machine=sysinfo.machine(),
                           versions=sysinfo.versions(), run_info=run_info, commands=harness.commands(),
                           notes=harness.notes, proxy_core=harness.launcher.proxy_core, prefix=PREFIX)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    raw = harness.procs.logs.parent / "results.json"
    raw.write_text(json.dumps(harness.results.to_json(), indent=1, default=str))
    print("\n" + text)
    print(f"written: {args.out} (raw readings: {raw})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
