"""The monitoring window: the last N rows in arrival order, in constant memory whatever the traffic."""

from __future__ import annotations

import tracemalloc

import numpy as np

from service.monitoring.window import PassengerWindow


def rows(start: int, n: int) -> np.ndarray:
    """n distinct rows numbered from `start` (the number in every column)."""
    values = np.arange(start, start + n, dtype=np.float64)
    return np.repeat(values[:, None], 3, axis=1)


def test_window_keeps_the_last_rows_oldest_first_across_wrap_around() -> None:
    window = PassengerWindow(5)
    sent = 0
    for n in (1, 3, 2, 4, 1, 7, 2):  # single rows, batches that wrap, one larger than the window
        window.add(rows(sent, n))
        sent += n
        got, _ = window.snapshot()
        expected = np.arange(max(0, sent - 5), sent, dtype=np.float64)
        assert window.size == min(sent, 5)
        np.testing.assert_array_equal(got[:, 0], expected)


def test_window_since_is_the_arrival_time_of_the_oldest_row_kept() -> None:
    now = [100.0]
    window = PassengerWindow(3, clock=lambda: now[0])
    assert window.snapshot()[1] is None
    for t in (101.0, 102.0, 103.0, 104.0):
        now[0] = t
        window.add(rows(0, 1))
    assert window.snapshot()[1] == 102.0
    now[0] = 110.0
    window.clear()
    assert window.size == 0
    assert window.reset_at == 110.0
    empty, since = window.snapshot()
    assert empty.shape == (0, 3)
    assert since is None


def test_window_memory_is_constant_over_a_million_passengers() -> None:
    window = PassengerWindow(1000)
    batch = rows(0, 997)  # not a divisor of the capacity: every position of the ring is written
    window.add(batch)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(1_000_000 // 997 + 1):
            window.add(batch)
            window.add(batch[:1])  # and single passengers
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = [s for s in after.compare_to(before, "filename") if "monitoring/window.py" in s.traceback[0].filename]
    # A million rows would be 32 MB; what may differ is a few interpreter objects (the ring's int positions).
    assert sum(s.size_diff for s in grown) < 1024
    assert window.nbytes == 1000 * 4 * 8
    assert window.size == 1000
