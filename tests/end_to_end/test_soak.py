"""The short version of bench/soak.py: a real server under concurrent mixed traffic."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

# The benchmark script itself, loaded from its file (bench/ is not a package).
run = runpy.run_path(str(Path(__file__).resolve().parents[2] / "bench" / "soak.py"))["run"]

pytestmark = pytest.mark.end_to_end


def test_mixed_traffic_zero_5xx_zero_wrong_decisions_flat_memory() -> None:
    report = run(seconds=6, clients=60, middleware=True)
    assert report.requests > 200
    assert report.server_errors == 0
    assert report.wrong == 0, report.examples
    assert all(report.latencies[kind] for kind in ("valid", "expired", "forged", "missing"))
    settled = report.rss_kb[len(report.rss_kb) // 3 :]
    assert max(settled) - settled[0] < 20 * 1024, f"RSS grew from {settled[0]} KiB to {max(settled)} KiB"
