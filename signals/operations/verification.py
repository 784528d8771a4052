"""The checks of ``verify_signals``: each PASS, WARN or FAIL with its reason.

Unlike the legacy verify, every check here can fail: each reads the real
thing (the database's migration table, its index list, the cluster's status
as ``manage.py qinfo`` shows it, the stored rows) rather than the presence of
a module.
"""

import logging
import tempfile
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from tqdm import tqdm

from signalhub.schedules import all_specs, import_func
from signalhub.secrets import mask_text
from signals.ledger.fields import HASH_FIELDS
from signals.models import Signal
from signals.operations.monitoring import count_signals, missing_indexes

logger = logging.getLogger(__name__)

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
# A cluster whose last status report is older than this is not running.
CLUSTER_STALE_AFTER = timedelta(seconds=30)
DEEP_BATCH = 5_000
PROBE_STRATEGY = "verify_signals_probe"


@dataclass
class Check:
    name: str
    status: str
    reason: str
    number: int = 0
    details: list | None = None

    def as_dict(self):
        return asdict(self)


def check_database(using):
    label = "main" if using == "default" else using
    name = f"{label} database reachable, migrations applied"
    connection = connections[using]
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return Check(name, FAIL, f"cannot read the {label} database ({connection.vendor}): {mask_text(exc)}")
    if plan:
        pending = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in plan[:5])
        command = "manage.py migrate" + ("" if using == "default" else f" --database {using}")
        return Check(name, FAIL, f"{len(plan)} migrations not applied ({pending}{', ...' if len(plan) > 5 else ''}): "
                                 f"run {command}")
    return Check(name, PASS, f"{connection.vendor}, all migrations applied")


def check_indexes(usings):
    name = f"every declared index present ({', '.join(usings)})"
    try:
        missing = {using: missing_indexes(using) for using in usings}
    except Exception as exc:
        return Check(name, FAIL, f"cannot list the indexes: {exc}")
    absent = [f"{using}:{table}.{index}" for using, tables in missing.items() for table, names in tables.items()
              for index in names]
    if absent:
        return Check(name, FAIL, f"missing: {', '.join(absent)} (run manage.py migrate; an index dropped by hand "
                                 f"is recreated by migrating the app back and forth or by its CREATE INDEX)", details=absent)
    return Check(name, PASS, "all present")


def check_cluster(now):
    from django_q.conf import Conf
    from django_q.status import Stat

    name = "django-q2 cluster running"
    try:
        stats = Stat.get_all()
    except Exception as exc:
        return Check(name, FAIL, f"cannot read the cluster status from the broker: {mask_text(exc)}")
    running = [s for s in stats if s.status in (Conf.IDLE, Conf.WORKING, Conf.STARTING)
               and now - s.timestamp < CLUSTER_STALE_AFTER]
    if running:
        return Check(name, PASS, ", ".join(f"{s.host} pid {s.pid} {s.status} ({len(s.workers)} workers)" for s in running))
    if stats:
        seen = ", ".join(f"{s.host} pid {s.pid} {s.status}, last report {(now - s.timestamp).total_seconds():.0f} s ago"
                         for s in stats)
        return Check(name, FAIL, f"no live cluster (stale or stopped: {seen}); start manage.py qcluster")
    return Check(name, FAIL, "no cluster reports its status; start manage.py qcluster (make run starts one)")


def check_schedules():
    from django_q.models import Schedule

    name = "every expected schedule present, enabled and importable"
    problems, warnings = [], []
    for spec in all_specs():
        schedule = Schedule.objects.filter(name=spec.name).first()
        if schedule is None:
            problems.append(f"{spec.name} is missing (run manage.py migrate, which registers the schedules)")
            continue
        if schedule.func != spec.func:
            problems.append(f"{spec.name} runs {schedule.func}, expected {spec.func}")
        if schedule.repeats == 0 or schedule.next_run is None:
            problems.append(f"{spec.name} is disabled (repeats={schedule.repeats}, next_run={schedule.next_run})")
        try:
            import_func(spec.func)
        except Exception as exc:
            problems.append(f"{spec.name}: {spec.func} cannot be imported: {exc}")
    if not settings.SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED:
        warnings.append("monthly archiving is switched off (SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED)")
    if problems:
        return Check(name, FAIL, "; ".join(problems), details=problems)
    if warnings:
        return Check(name, WARN, "; ".join(warnings))
    return Check(name, PASS, f"{len(all_specs())} schedules")


def check_recent_activity(now):
    name = "recent activity"
    latest = Signal.objects.order_by("-created_at").values_list("created_at", flat=True).first()
    if latest is None:
        return Check(name, WARN, "no signal stored yet")
    age = now - latest
    if age > timedelta(hours=1):
        return Check(name, WARN, f"no signal in the last hour; the latest is {age.total_seconds() / 3600:.1f} h old")
    return Check(name, PASS, f"latest signal {age.total_seconds():.0f} s ago")


def check_hashes(usings, progress=None):
    """Recompute every stored signal's hash (main and archive) in keyset batches; FAIL naming each mismatch."""
    name = "every stored signal matches its verification hash"
    mismatches = []
    checked = 0
    fields = ("pk", "sha256", *HASH_FIELDS)
    for using in usings:
        total, _ = count_signals(using)
        with tqdm(total=total, unit="signal", desc=f"hashes ({using})", file=progress, disable=progress is None) as bar:
            last_pk = 0
            while True:
                # only(): the nine hashed fields, never reasoning or metadata.
                batch = list(Signal._base_manager.using(using).filter(pk__gt=last_pk).order_by("pk").only(*fields)[:DEEP_BATCH])
                if not batch:
                    break
                for signal in batch:
                    if not signal.hash_matches():
                        mismatches.append(f"{using}:{signal.signal_id} (pk {signal.pk})")
                last_pk = batch[-1].pk
                checked += len(batch)
                bar.update(len(batch))
    if mismatches:
        return Check(name, FAIL, f"{len(mismatches)} of {checked} signals no longer match their hash "
                                 f"(tampered or corrupted): {', '.join(mismatches)}", details=mismatches)
    return Check(name, PASS, f"{checked} signals checked")


class _ProbeRolledBack(Exception):
    """Raised inside the probe's transaction so that nothing it wrote is kept."""


def probe_write_path(now, related=None):
    """Send one probe signal through the real write path and return what each step found.

    clean_signal, then a journal segment in a temporary directory (created,
    appended, read back and retired, as the flusher does), then write_batch
    inside a transaction that is always rolled back: the row, and each row
    another app keeps for it (``related`` maps a name to a function of the
    signal_id that tells whether it exists: the sync app's delivery), are
    looked up before the rollback and must be gone after it. Nothing is left
    in the ledger, the deliveries or the real journal directory. (On
    PostgreSQL the id sequence still advances by one: sequences are outside
    transactions.)
    """
    from signals.ledger.validation import clean_signal
    from signals.writepath import journal
    from signals.writepath.writer import Incoming, write_batch

    related = related or {}
    signal_id = f"VERIFY-PROBE-{uuid.uuid4().hex[:16]}"
    values = clean_signal({"signal_id": signal_id, "symbol": "PROBE", "action": "BUY", "entry_price": 1.0,
                           "confidence": 0.0, "strategy": PROBE_STRATEGY, "timestamp": now}, now=now)
    with tempfile.TemporaryDirectory(prefix="signalhub-verify-") as directory:
        segment = journal.create_segment(Path(directory), 0, fsync_dir=False)
        try:
            segment.append(journal.encode(values), fsync=True)
            lines = journal.read_lines(segment.reader(), 0, segment.size, max_lines=10, final=True)
        finally:
            segment.retire()
        if len(lines) != 1 or lines[0].error or lines[0].values != values:
            found = lines[0].error if len(lines) == 1 and lines[0].error else f"{len(lines)} lines, values differ"
            raise AssertionError(f"the journal did not give back what was appended ({found})")
        incoming = Incoming.from_line(segment.name, lines[0])
        leftovers = list(Path(directory).iterdir())
        if leftovers:
            raise AssertionError(f"the retired segment left files behind: {[p.name for p in leftovers]}")
    seen = {}
    try:
        with transaction.atomic():
            result = write_batch([incoming])
            seen["result"] = result.as_dict()
            seen["row"] = Signal.objects.filter(signal_id=signal_id).exists()
            for name, exists in related.items():
                seen[name] = exists(signal_id)
            raise _ProbeRolledBack
    except _ProbeRolledBack:
        pass
    left = Signal._base_manager.filter(signal_id=signal_id).exists() or any(
        exists(signal_id) for exists in related.values())
    return seen, left


def check_write_path(now, related=None):
    name = "the write path works end to end (probe, no trace left)"
    related = related or {}
    try:
        seen, left = probe_write_path(now, related)
    except Exception as exc:
        logger.exception("the write path probe failed")
        return Check(name, FAIL, f"the probe failed: {exc}")
    if left:
        return Check(name, FAIL, f"the probe's {' or '.join(['row', *related])} is still stored after the rollback")
    if seen["result"] != {"stored": 1, "duplicates": 0, "conflicts": 0, "quarantined": 0}:
        return Check(name, FAIL, f"the probe was not stored as new: {seen['result']}")
    missing = [what for what in ("row", *related) if not seen[what]]
    if missing:
        return Check(name, FAIL, "the probe was written but " + ("its row" if missing[0] == "row" else f"its {missing[0]} row")
                     + " could not be read back in the same transaction")
    return Check(name, PASS, "validated, journalled and read back, stored"
                 + "".join(f" with its {other} row" for other in related) + ", rolled back")


def check_journals(now):
    from signalhub.checks import unusable_dir_reason
    from signals.writepath import journal

    name = "journals healthy (writable, no stale segments)"
    directory = journal.journal_dir()
    reason = unusable_dir_reason(directory)
    if reason:
        return Check(name, FAIL, f"the journal directory is not usable: {reason} (SIGNALHUB_JOURNAL_DIR)")
    stats = journal.backlog_stats()
    dead = []
    for path in journal.segment_paths(directory):
        claimed = journal.try_claim(path)  # taken only when its owner is dead; let go at once
        if claimed is not None:
            if claimed.start < claimed.size:
                dead.append(path.name)
            claimed.release()
    age, limit = stats["oldest_pending_age_seconds"], settings.SIGNALHUB_MONITOR_JOURNAL_MAX_AGE
    if age is not None and age > limit:
        return Check(name, FAIL, f"{stats['pending_signals']} signals wait in {directory}, the oldest for {age:.0f} s "
                                 f"(over {limit:g} s): run manage.py flush_signals and check the cluster",
                     details=dead or None)
    if dead:
        return Check(name, WARN, f"{len(dead)} segments of stopped processes wait for replay ({', '.join(dead[:5])}"
                                 f"{', ...' if len(dead) > 5 else ''}): the next flush replays them", details=dead)
    return Check(name, PASS, f"{directory} writable; {stats['segments']} segments, "
                             f"{stats['pending_signals']} signals pending")


def write_path_checks(now, related=None):
    return [check_write_path(now, related), check_journals(now)]


def run_checks(*, deep=False, progress=None, now=None, other_checks=(), related=None):
    """Return the numbered list of Checks.

    ``other_checks`` are other apps' checks (functions of ``now`` returning a
    list of Checks), run after the schedules'; ``related`` goes to the write
    path probe (see probe_write_path).
    """
    now = now or timezone.now()
    databases = {"default": check_database("default"), "archive": check_database("archive")}
    checks = list(databases.values())
    # The other checks read the main database; an unreadable archive only drops it from theirs.
    if databases["default"].status != FAIL:
        usings = [using for using, check in databases.items() if check.status != FAIL]
        checks += [check_indexes(usings), *write_path_checks(now, related), check_cluster(now), check_schedules(),
                   *(check for other in other_checks for check in other(now)), check_recent_activity(now)]
        if deep:
            checks.append(check_hashes(usings, progress))
    for number, check in enumerate(checks, start=1):
        check.number = number
    return checks
