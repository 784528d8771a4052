"""repeat_for_a_minute: the loop behind the flush and delivery schedules."""

import os
import signal

from signalhub.schedules import repeat_for_a_minute


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_passes_repeat_every_interval_within_the_window():
    clock = FakeClock()
    started = []

    def one_pass():
        started.append(clock.now)
        clock.now += 1.0  # each pass takes a second
        return len(started)

    results = repeat_for_a_minute(one_pass, 10, window=55, clock=clock, sleep=clock.sleep)
    # A pass starts only if it starts before the window ends (55 s), so none overlaps the next run.
    assert started == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert results == [1, 2, 3, 4, 5, 6]


def test_an_interval_as_long_as_the_window_runs_one_pass():
    clock = FakeClock()
    assert repeat_for_a_minute(lambda: "done", 60, window=55, clock=clock, sleep=clock.sleep) == ["done"]


def test_a_failing_pass_does_not_stop_the_next():
    clock = FakeClock()
    calls = []

    def flaky():
        calls.append(clock.now)
        clock.now += 1.0
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return "ok"

    assert repeat_for_a_minute(flaky, 20, window=55, clock=clock, sleep=clock.sleep) == ["ok", "ok"]
    assert len(calls) == 3


def test_sigint_ends_the_loop_after_the_pass_under_way_and_restores_the_handler():
    clock = FakeClock()
    before = signal.getsignal(signal.SIGINT)

    def one_pass():
        clock.now += 1.0
        if clock.now > 10:
            os.kill(os.getpid(), signal.SIGINT)  # what serve sends the cluster when it stops
        return clock.now

    results = repeat_for_a_minute(one_pass, 10, window=55, clock=clock, sleep=clock.sleep)
    assert results == [1.0, 11.0]  # the second pass finished, no third started
    assert signal.getsignal(signal.SIGINT) is before
