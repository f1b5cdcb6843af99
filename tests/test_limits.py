"""What a container lets the process use (``rnnumba._limits``): CPUs under a
cgroup quota, memory under a cgroup limit, for both cgroup versions."""

import math
import os

import pytest

from rnnumba import _limits, memory


def cgroup(tmp_path, monkeypatch, files):
    """A stand-in for /sys/fs/cgroup holding ``files`` ({relative path: text})."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    monkeypatch.setattr(_limits, "CGROUP", str(tmp_path))


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({}, None),  # no cgroup files: no quota
        ({"cpu.max": "max 100000"}, None),  # v2, unlimited
        ({"cpu.max": "150000 100000"}, 1.5),
        ({"cpu.max": "50000 100000"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),  # v1, unlimited
        ({"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"}, 1.0),
        ({"cpu.max": "garbage"}, None),
    ],
)
def test_a_cpu_quota_is_read_in_both_cgroup_versions(tmp_path, monkeypatch, files, quota):
    cgroup(tmp_path, monkeypatch, files)
    assert _limits._cpu_quota() == quota
    cpus = len(os.sched_getaffinity(0))
    expected = cpus if quota is None else max(1, min(cpus, math.ceil(quota)))
    assert _limits.usable_cpus() == expected


def test_a_quota_of_one_cpu_starts_no_compile_helper(tmp_path, monkeypatch):
    """Two CPUs in the affinity mask, one CPU's worth of time: no second process."""
    from rnnumba import _prefetch

    cgroup(tmp_path, monkeypatch, {"cpu.max": "100000 100000"})
    monkeypatch.setattr(_prefetch, "_started", {})
    assert _limits.usable_cpus() == 1
    assert _prefetch._spawn("elman", "float64", "epoch") is None
    assert not _prefetch._started


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_memory_under_a_cgroup_limit_counts_in_both_versions(tmp_path, monkeypatch, version):
    files = (
        {"memory.max": str(3 * 2**20), "memory.current": str(2**20)}
        if version == "v2"
        else {"memory/memory.limit_in_bytes": str(3 * 2**20), "memory/memory.usage_in_bytes": str(2**20)}
    )
    cgroup(tmp_path / "limited", monkeypatch, files)
    assert memory.available_bytes() == 2 * 2**20  # the least room: the cgroup's
    unlimited = (
        {"memory.max": "max", "memory.current": str(2**20)}
        if version == "v2"
        else {"memory/memory.limit_in_bytes": str(2**63 - 4096), "memory/memory.usage_in_bytes": str(2**20)}
    )
    cgroup(tmp_path / "unlimited", monkeypatch, unlimited)
    assert memory.available_bytes() > 2 * 2**20
