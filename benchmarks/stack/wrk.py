"""Closed-loop load with ``wrk`` (Debian's package): a Lua script per kind of request
(lua/), its summary as one JSON line, and wrk's own CPU from ``wait4``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

LUA: Final = Path(__file__).with_name("lua")
MARK: Final = "BENCH_JSON "


def available() -> bool:
    return shutil.which("wrk") is not None


def script(kind: str, workdir: Path) -> Path:
    """lua/common.lua followed by lua/<kind>.lua, written to ``workdir``."""
    path = workdir / f"wrk-{kind}.lua"
    text = (LUA / "common.lua").read_text() + "\n" + (LUA / f"{kind}.lua").read_text()
    path.write_text(text)
    return path


def parse(stdout: str) -> dict[str, Any]:
    """The BENCH_JSON line of a wrk run, with ``rate`` and ``ok`` (non-error answers)."""
    for line in stdout.splitlines():
        if line.startswith(MARK):
            data: dict[str, Any] = json.loads(line[len(MARK) :])
            break
    else:
        raise RuntimeError(f"wrk printed no summary:\n{stdout[-2000:]}")
    errors = sum(v for k, v in data.items() if k.startswith("errors_"))
    data["ok"] = data["requests"] - data["errors_status"]
    data["errors"] = errors
    data["rate"] = data["ok"] / data["duration_s"] if data["duration_s"] > 0 else 0.0
    return data


def run(
    url: str,
    *,
    kind: str,
    workdir: Path,
    seconds: float,
    connections: int,
    env: Mapping[str, str],
    threads: int = 1,
) -> dict[str, Any]:
    """One wrk run against ``url``; its summary and ``generator_cpu_s``."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script(kind, workdir)),
        url,
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        text=True,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}:\n{out[-2000:]}")
    result = parse(out)
    result["generator_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)
    result["connections"] = connections
    return result


def run_many(urls: Sequence[str], **options: Any) -> dict[str, Any]:
    """One wrk per URL at once (several ``serve``): rates and CPU add up, latency
    percentiles are the worst of them."""
    if len(urls) == 1:
        return run(urls[0], **options)
    with ThreadPoolExecutor(len(urls)) as pool:
        results = list(pool.map(lambda u: run(u, **options), urls))
    merged: dict[str, Any] = {"per_url": results}
    for key in ("requests", "ok", "errors", "rate", "generator_cpu_s", "connections"):
        merged[key] = sum(r[key] for r in results)
    for key in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"):
        merged[key] = max(r[key] for r in results)
    merged["duration_s"] = max(r["duration_s"] for r in results)
    return merged
