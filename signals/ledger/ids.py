"""Signal ids generated for producers that do not supply one.

UUIDv7 layout (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.
Ids sort by creation time (good for the unique index's locality), and two
processes cannot collide the way the legacy ``timestamp + thread id`` ids did.
Within one process a counter keeps ids strictly increasing even when the clock
stands still or steps back.
"""

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = 0


def new_signal_id() -> str:
    global _last
    with _lock:
        ms = time.time_ns() // 1_000_000
        rand = int.from_bytes(os.urandom(10), "big")
        value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
        if value <= _last:
            # Same millisecond (or the clock went back): count up from the last id,
            # keeping the version and variant bits intact.
            value = _increment(_last)
        _last = value
    return str(uuid.UUID(int=value))


def _increment(value: int) -> int:
    rand_b = (value & ((1 << 62) - 1)) + 1
    if rand_b < (1 << 62):
        return (value & ~((1 << 62) - 1)) | rand_b
    rand_a = ((value >> 64) & 0xFFF) + 1
    ms = value >> 80
    if rand_a > 0xFFF:
        rand_a, ms = 0, ms + 1
    return (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62)
