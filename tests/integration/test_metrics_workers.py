"""Metrics of several worker processes, collected through PROMETHEUS_MULTIPROC_DIR.

Two real uvicorn workers (``workers=2``, in a subprocess, each building its own broker
with the factory in tests/integration/worker_app.py) share one listening socket; requests
land on either. Whichever worker answers ``/metrics`` must report the sum of both, which
is checked against each worker's own file in the shared directory. When the server stops,
each worker forgets its live gauge (``sts_broker_info``) and the directory keeps the counts.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import _key, free_port, write_config

ROOT = Path(__file__).resolve().parents[2]
SERVE = """
import sys, uvicorn
from broker.observability import prepare_multiprocess_dir
prepare_multiprocess_dir(2)
uvicorn.run("tests.integration.worker_app:app", factory=True, host="127.0.0.1",
            port=int(sys.argv[1]), workers=2, log_level="warning")
"""
REQUESTS = "sts_broker_requests_total"


def per_worker(directory: Path) -> dict[int, float]:
    """pid -> health-check requests that worker counted, read from its own file."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == REQUESTS and labels == {"action": "admin", "code": "Success"}:
                counts[pid] = counts.get(pid, 0.0) + value
    return counts


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    keys = {name: _key(i) for i, name in enumerate(["alice", "bob", "bob_old", "carol", "dave"])}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    totp = {"alice": base64.b32encode(os.urandom(20)).decode()}
    write_config(tmp_path / "broker.yaml", keys, totp, url)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "counter_1.db").write_bytes(b"stale")  # left by an earlier run: removed
    env = {
        **os.environ,
        "STS_BROKER_CONFIG": str(tmp_path / "broker.yaml"),
        "TEST_TOKEN_KEY": base64.b64encode(os.urandom(32)).decode(),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: uvicorn signals its whole group
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.send_signal(signal.SIGINT)
                output, _ = proc.communicate(timeout=20)
                raise AssertionError(f"the workers did not start:\n{output}")
            time.sleep(0.1)
        yield url, metrics, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)


def test_any_worker_reports_the_metrics_of_both(
    workers: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    url, metrics, proc = workers
    assert not (metrics / "counter_1.db").exists()

    def probe(_: int) -> int:
        return httpx.get(f"{url}/healthz", headers={"Connection": "close"}).status_code

    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(max_workers=8) as pool:
        while len([n for n in per_worker(metrics).values() if n > 0]) < 2:
            assert time.monotonic() < deadline, (
                f"one worker took every request: {per_worker(metrics)}"
            )
            assert set(pool.map(probe, range(32))) == {200}
    counted = per_worker(metrics)
    assert len(counted) == 2 and all(n > 0 for n in counted.values())

    answer = httpx.get(f"{url}/metrics")
    assert answer.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    health = sum(
        s.value
        for s in families["sts_broker_requests"].samples
        if s.name == REQUESTS and s.labels == {"action": "admin", "code": "Success"}
    )
    assert health == sum(counted.values())
    info = [s for s in families["sts_broker_info"].samples]
    assert [s.value for s in info] == [2.0]  # one per live worker
    assert len(list(metrics.glob("gauge_livesum_*.db"))) == 2

    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    # Each worker forgot its live gauge as it stopped; the counts stay for the next scrape.
    assert list(metrics.glob("gauge_livesum_*.db")) == []
    after = per_worker(metrics)
    assert set(after) == set(counted)
    assert sum(after.values()) == sum(counted.values()) + 1  # the scrape counted itself
