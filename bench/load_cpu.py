"""`python -m bench.load_cpu`: where the CPU goes while wrk drives status lookups.

`python -m bench load` reports throughput against the bare ceiling; on a shared machine that
ratio moves with whatever else runs. This diagnostic runs the same servers (the bare ceiling
and `townhall serve` on PostgreSQL + Redis, as the bench starts them) under the same wrk load,
and reads the CPU time every process used from `/proc` before and after each scenario,
grouped as: each server's process group (its workers), wrk, `postgres`, `redis-server`,
kernel threads, and other Python processes (other suites on the machine). Per request, so the
lookup's cost can be set against the ceiling's whatever the load.

    .venv/bin/python -m bench.load_cpu --duration 8
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

from bench import load

HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(groups: dict[int, str]) -> collections.Counter[str]:
    """CPU seconds (user + system) of every live process, by group or command name, and of
    this process's finished children (wrk)."""
    found: collections.Counter[str] = collections.Counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    found["wrk"] = children.ru_utime + children.ru_stime
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        group = int(fields[2])
        if group in groups:
            name = groups[group]
        elif name.startswith("python"):
            name = "other python processes"
        elif name.startswith("kworker"):
            name = "kernel workers"
        found[name] += (int(fields[11]) + int(fields[12])) / HZ
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_cpu", description=__doc__)
    parser.add_argument("--duration", type=int, default=8, help="Seconds per scenario (8).")
    parser.add_argument("--requests", type=int, default=2000, help="Requests seeded (2,000).")
    parser.add_argument("--workers", type=int, default=2, help="Workers of each server (2).")
    parser.add_argument("--redis-url", default=load.DEFAULT_REDIS)
    parser.add_argument("--pg-admin-url", default=load.DEFAULT_PG_ADMIN)
    args = parser.parse_args(argv)
    wrk = load.ensure_wrk()
    name = f"townhall_load_cpu_{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory() as folder,
        load.postgres_database(args.pg_admin_url, name) as database_url,
    ):
        work = Path(folder)
        env = load.townhall_env(work / "data", database_url, args.redis_url)
        seeded = load.seed_instance(env, args.requests)
        codes = work / "codes.txt"
        codes.write_text("\n".join(seeded.codes) + "\n")
        bare = load.start_bare(args.workers, work, env)
        townhall = load.start_townhall(args.workers, work, env)
        groups = {bare.popen.pid: "bare server", townhall.popen.pid: "townhall server"}
        scenarios = [("bare", bare, load.bare_script())] + [
            (s.name, townhall, load.status_script(codes, s.path))
            for s in load.SCENARIOS
            if s.kind == "status"
        ]
        try:
            for scenario, server, script in scenarios:
                path = work / f"{scenario}.lua"
                path.write_text(script)
                load.run_wrk(  # warm-up, not counted
                    wrk,
                    server.base_url + "/",
                    path,
                    duration=2,
                    connections=64,
                    threads=2,
                    log=work / "warm.txt",
                )
                before = cpu_seconds(groups)
                raw = load.run_wrk(
                    wrk,
                    server.base_url + "/",
                    path,
                    duration=args.duration,
                    connections=64,
                    threads=2,
                    log=work / f"{scenario}.txt",
                )
                after = cpu_seconds(groups)
                count = raw["requests"]
                rate = count / (raw["duration_us"] / 1e6)
                print(f"{scenario}: {rate:,.0f} req/s, load average {os.getloadavg()[0]:.1f}")
                used = {k: after[k] - before.get(k, 0.0) for k in after}
                for key, seconds in sorted(used.items(), key=lambda kv: -kv[1])[:8]:
                    if seconds >= 0.05:
                        print(f"  {key:28} {seconds:6.2f} s  {seconds / count * 1000:.3f} ms/req")
                time.sleep(1)
        finally:
            bare.stop()
            townhall.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
