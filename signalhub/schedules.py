"""SignalHub's django-q2 schedules, registered idempotently by name.

Each app lists its schedules in ``<app>/schedules.py`` as ``SCHEDULES``, a list
of ``ScheduleSpec``. ``ensure_schedules()`` runs after every ``migrate``
(post_migrate) and creates or updates one ``django_q.Schedule`` per name, so a
schedule is never duplicated and a changed interval takes effect on the next
migrate. Staff see them under Tasks > Scheduled tasks in the admin.

django-q2 runs its scheduler about every 30 seconds and its smallest interval
is one minute. Work that must run every few seconds (the flush, delivery) is
scheduled every minute and repeats itself inside that minute with
``repeat_for_a_minute``.
"""

import importlib
import logging
import signal
import threading
import time
from dataclasses import dataclass, field

from django.apps import apps
from django.utils import timezone

logger = logging.getLogger(__name__)

# The repeating tasks stop this long before the next run is due, so two runs
# of the same task do not overlap.
MINUTE_WINDOW_SECONDS = 55


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    func: str  # dotted path of a module-level function
    minutes: int = 1  # django_q.Schedule.MINUTES interval
    cron: str | None = None  # instead of minutes, a cron expression (UTC)
    kwargs: dict = field(default_factory=dict)
    description: str = ""


def all_specs():
    """Return every ScheduleSpec declared by an installed app's ``schedules`` module."""
    specs = []
    for config in apps.get_app_configs():
        try:
            module = importlib.import_module(f"{config.name}.schedules")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.schedules":
                raise
            continue
        specs.extend(getattr(module, "SCHEDULES", ()))
    return specs


def ensure_schedules(using="default", **kwargs):
    """Create or update one django-q2 Schedule per declared spec; return the names touched."""
    from django_q.models import Schedule

    names = []
    for spec in all_specs():
        values = {
            "func": spec.func,
            # django-q2 keeps kwargs as the text inside dict(...).
            "kwargs": ", ".join(f"{key}={value!r}" for key, value in spec.kwargs.items()) or None,
            "repeats": -1,
        }
        if spec.cron:
            values.update(schedule_type=Schedule.CRON, cron=spec.cron, minutes=None)
        else:
            values.update(schedule_type=Schedule.MINUTES, minutes=spec.minutes, cron=None)
        schedule = Schedule.objects.using(using).filter(name=spec.name).first()
        if schedule is None:
            Schedule.objects.using(using).create(name=spec.name, next_run=timezone.now(), **values)
            logger.info("registered schedule %s -> %s", spec.name, spec.func)
        else:
            changed = {key: value for key, value in values.items() if getattr(schedule, key) != value}
            if changed:
                Schedule.objects.using(using).filter(pk=schedule.pk).update(**changed)
                logger.info("updated schedule %s: %s", spec.name, ", ".join(sorted(changed)))
        names.append(spec.name)
    return names


def import_func(dotted):
    module, name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


class _StopRequest:
    """SIGINT handler for the length of a repeating task: finish the pass under way, then return."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        self.requested = True


def repeat_for_a_minute(func, interval_seconds, *, window=MINUTE_WINDOW_SECONDS, clock=time.monotonic, sleep=time.sleep):
    """Call ``func()`` every ``interval_seconds`` for about a minute; return the list of results.

    A failing pass is logged and the next one still runs: one bad pass must not
    stop the flush or delivery for the rest of the minute. A SIGINT (``serve``
    sends one to the cluster's processes when it stops; django-q2's workers
    otherwise ignore it) ends the loop after the pass under way, so stopping
    the cluster does not wait out the minute.
    """
    stop = _StopRequest()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, stop) if in_main_thread else None
    try:
        results = []
        deadline = clock() + window
        while True:
            started = clock()
            try:
                results.append(func())
            except Exception:
                logger.exception("periodic pass of %s failed", getattr(func, "__qualname__", func))
            next_start = started + interval_seconds
            if stop.requested or interval_seconds >= window or next_start >= deadline:
                return results
            # Short naps, so a stop request is seen within a second.
            while not stop.requested and (remaining := next_start - clock()) > 0:
                sleep(min(remaining, 1.0))
            if stop.requested:
                return results
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)
