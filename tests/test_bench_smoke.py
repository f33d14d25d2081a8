"""The benchmark scripts still run: each with tiny numbers, as a tester would start it.

Only that they run to the end and report what they should; never how fast (that is for the
benchmarks themselves, run on a quiet machine: docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "scripts" / "bench"

pytestmark = pytest.mark.slow

SMOKE_TIMEOUT_S = 300


def run_bench(script: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPNET_")}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--json", *args],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return json.loads(done.stdout)


def test_abuse_benchmark_runs_all_three_parts() -> None:
    fig = run_bench(
        "abuse.py",
        "--report-only",  # targets are for real runs; here only that every part runs and reports
        *("--rounds", "1", "--window-actions", "200", "--members", "20", "--batch", "50"),
        *("--flood-conns", "4", "--flood-idle", "20", "--unknown-keys", "20"),
        *("--uploads", "6", "--upload-mib", "0.25"),
        *("--idle-sockets", "50", "--probes", "10", "--probe-interval", "0", "--baseline-probes", "5"),
        *("--rate-seconds", "0.05", "--sign-procs", "1"),
    )
    m = fig["members"]
    assert [w["flood"] for w in m["windows"]] == [False, True]
    assert all(w["actions"] == 200 for w in m["windows"])
    assert m["member_answers"].get("200", 0) >= 8  # 2 windows x 2 lanes x 2 batches of 50, retries aside
    assert sum(m["flood"]["requests"].values()) > 0, m["flood"]
    # Whatever the stranger sent, the members' co-op holds the members' actions and exactly what
    # admission let the stranger add (the reference node was fed the same).
    assert m["state"]["equal_to_reference_plus_stranger_accepted"], m["state"]
    u = fig["uploads"]
    assert sum(u["answers"].values()) == 6 and not any(" 5" in k for k in u["answers"]), u["answers"]
    assert u["healthz_after"] == 200 and u["sum_vmhwm_mb"] > 0
    i = fig["idle"]
    assert i["opened"]["live"] == 50 and i["with_idle_sockets"]["probes"] == 10
    assert isinstance(fig["targets_met"], bool) and fig["verdict"]
    assert fig["limits_single_core"]["libsodium_verify_per_s"] > 0 and fig["machine"]["ram_mb"] > 0
