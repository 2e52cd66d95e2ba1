"""Defects 5 and 12: no web server unless --dashboard; an unreachable --scheduler is one clear line, soon."""

from __future__ import annotations

import socket
import time

import psutil
import pytest

from damagemap.mapping.execution import DaskExecutor, local_cluster_options
from tests.robustness.conftest import MAP, assert_clean_failure, rgb_scene, run_cli, snapshot


def _listening() -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of this process and its children."""
    me = psutil.Process()
    found = set()
    for proc in [me, *me.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        found |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
    return found


def _comm_ports(executor: DaskExecutor) -> set[int]:
    info = executor.client.scheduler_info()
    addresses = [info["address"], *info["workers"], *(w.get("nanny") for w in info["workers"].values())]
    return {int(a.rsplit(":", 1)[1]) for a in addresses if a}


def test_cluster_options_keep_everything_local():
    opts = local_cluster_options(2, dashboard=False)
    assert opts["host"] == "127.0.0.1" and opts["worker_dashboard_address"] is None
    assert local_cluster_options(2, dashboard=True)["dashboard_address"] == "127.0.0.1:0"


@pytest.mark.parametrize("dashboard", [False, True])
def test_no_web_server_unless_dashboard(dashboard):
    before = _listening()
    executor = DaskExecutor(object(), workers=1, dashboard=dashboard)
    try:
        extra = _listening() - before
        comms = _comm_ports(executor)
    finally:
        executor.close()
    assert all(ip == "127.0.0.1" for ip, _ in extra), extra
    servers = {port for _, port in extra} - comms  # anything but Dask's own connections
    assert 8787 not in servers or dashboard
    assert len(servers) == (1 if dashboard else 0), (extra, comms)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_clear_line_within_the_timeout(ws, tmp_path):
    scene = rgb_scene(tmp_path / "scene.tif")
    address = f"tcp://127.0.0.1:{_free_port()}"
    before = snapshot(tmp_path)
    started = time.perf_counter()
    result = run_cli(
        ["map", ws.model, scene, "--out", tmp_path / "out", *MAP, "--scheduler", address, "--scheduler-timeout", "1"]
    )
    elapsed = time.perf_counter() - started
    assert_clean_failure(
        result, 4, f"--scheduler {address}", "no Dask scheduler answered within 1 s", "--scheduler-timeout"
    )
    assert elapsed < 8, elapsed
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()
