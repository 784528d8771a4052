"""Reading Alpine's Retry-After header: seconds or an HTTP date, never negative, at most a day."""

from datetime import UTC, datetime

import pytest
import time_machine

from sync.client import RETRY_AFTER_MAX, parse_retry_after

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("value, seconds", [("120", 120.0), (" 7 ", 7.0), ("0", 0.0)])
def test_delta_seconds_are_read_as_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


@time_machine.travel(NOW, tick=False)
def test_an_http_date_is_the_seconds_until_then():
    assert parse_retry_after("Mon, 02 Mar 2026 12:05:00 GMT") == 300.0


@time_machine.travel(NOW, tick=False)
def test_an_http_date_in_the_past_asks_for_no_wait():
    assert parse_retry_after("Mon, 02 Mar 2026 11:00:00 GMT") == 0.0


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize("value", ["31536000", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_wait_of_more_than_a_day_is_cut_to_a_day(value):
    assert parse_retry_after(value) == RETRY_AFTER_MAX == 86400


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Mon, 32 Foo 2026", "0" * 5000])
def test_a_value_in_neither_form_is_ignored(value):
    assert parse_retry_after(value) is None
