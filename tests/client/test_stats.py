"""ClientStats: counters, bounded latency reservoir, percentiles."""

from __future__ import annotations

from cvbulk.client import ClientStats


def test_snapshot_shape_and_percentiles():
    stats = ClientStats()
    for ms in range(1, 101):
        stats.record_latency(ms / 1000.0)
    snap = stats.snapshot()
    assert set(snap) == {"requests", "retries", "throttled", "server_errors", "transport_errors", "bytes_sent",
                         "bytes_received", "latency_ms"}
    assert snap["latency_ms"] == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}


def test_reservoir_stays_bounded_and_max_exact():
    stats = ClientStats(reservoir_size=64)
    for n in range(10_000):
        stats.record_latency((n % 100) / 1000.0)
    stats.record_latency(5.0)
    assert len(stats._samples) == 64
    lat = stats.latency_ms()
    assert lat["max"] == 5000.0
    assert 20.0 <= lat["p50"] <= 80.0  # a fair sample of a uniform 0..99 ms spread


def test_empty_stats():
    assert ClientStats().latency_ms() == {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
