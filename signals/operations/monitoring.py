"""What ``monitor_signals`` and the monitor snapshot schedule report: sections of figures and a list of problems.

Every figure is cheap on tens of millions of rows: counts are over a recent
``created_at`` range (idx_created_outcome), open signals over the partial index
idx_open_timestamp, and the total is exact only up to a bound, an estimate
(said so) beyond it. Nothing here scans the whole ledger.

Severity (README "Operations"): CRITICAL when signals may be lost or the
database will slow to a crawl (a declared index is missing, a database cannot
be read, signals wait in the journal longer than they should); WARNING for what
needs attention soon (size, WAL, quiet or slow ingest, a main table that should
be archived, conflicts, quarantined records, old undelivered or dead
deliveries, a paused destination). Sync switched off is information only.
"""

import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import connections
from django.db.models import Avg, Count
from django.utils import timezone

from signalhub.counts import ID_SPAN_ESTIMATE, PLANNER_ESTIMATE, bounded_count, id_span, planner_estimate
from signalhub.databases import database_size
from signalhub.routers import ARCHIVED_APPS
from signals.models import Signal

logger = logging.getLogger(__name__)

WARNING, CRITICAL = "warning", "critical"
EXIT_CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2}  # the Nagios convention
MB = 1_048_576
TOP_SYMBOLS = 10


@dataclass
class Problem:
    severity: str  # WARNING or CRITICAL
    code: str  # stable name, for scripts: "db_size", "missing_index", ...
    text: str


@dataclass
class Report:
    generated_at: str
    sections: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    @property
    def status(self):
        severities = {problem.severity for problem in self.problems}
        return "CRITICAL" if CRITICAL in severities else "WARNING" if WARNING in severities else "OK"

    @property
    def exit_code(self):
        return EXIT_CODES[self.status]

    def as_dict(self):
        return {"status": self.status, "exit_code": self.exit_code, **asdict(self)}


# Counting cheaply ----------------------------------------------------------------------------

def count_signals(using="default", *, exact_up_to=None):
    """Return ``(count, how)``: exact up to ``exact_up_to`` rows, an estimate (said in ``how``) beyond.

    The exact part counts at most ``exact_up_to + 1`` entries of the
    created_at index, so its cost is bounded whatever the table's size.
    Beyond it: PostgreSQL's planner estimate (pg_class.reltuples, kept by
    ANALYZE/autovacuum; used without counting when it is over twice the
    bound); SQLite's id span, an upper bound since archived and deleted ids
    leave gaps.
    """
    exact_up_to = exact_up_to or settings.SIGNALHUB_MONITOR_MAX_MAIN_SIGNALS
    connection = connections[using]
    table = Signal._meta.db_table
    estimate = None
    if connection.vendor == "postgresql":
        estimate = planner_estimate(connection, table)  # -1 until the table is first analyzed
        # Well beyond the bound: the planner's figure, without counting anything.
        if estimate > 2 * exact_up_to:
            return estimate, PLANNER_ESTIMATE
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM (SELECT created_at FROM {connection.ops.quote_name(table)} "
                       "ORDER BY created_at DESC LIMIT %s) AS recent", [exact_up_to + 1])
        counted = cursor.fetchone()[0]
    if counted <= exact_up_to:
        return counted, "exact"
    if estimate is not None and estimate > exact_up_to:
        return estimate, PLANNER_ESTIMATE
    return max(id_span(connection, table), counted), ID_SPAN_ESTIMATE


def _file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _ledger_models():
    return [model for label in sorted(ARCHIVED_APPS) if apps.is_installed(label)
            for model in apps.get_app_config(label).get_models() if model._meta.managed and not model._meta.proxy]


# Sections: each returns (figures or None, [Problem, ...]) --------------------------------

def storage_section(now):
    main = connections["default"]
    figures = {"engine": main.vendor}
    problems = []
    if main.vendor == "sqlite":
        path = Path(main.settings_dict["NAME"])
        size, wal, shm = (_file_size(p) for p in (path, f"{path}-wal", f"{path}-shm"))
        figures.update(file=str(path), size_bytes=size, wal_bytes=wal, shm_bytes=shm)
        database_bytes = (size or 0) + (wal or 0)
        if wal is not None and wal > settings.SIGNALHUB_MONITOR_WAL_MAX_MB * MB:
            problems.append(Problem(WARNING, "wal_size", f"WAL file is {wal / MB:.0f} MB "
                                    f"(over {settings.SIGNALHUB_MONITOR_WAL_MAX_MB:g} MB): is a long reader blocking checkpoints?"))
    else:
        tables = {}
        with main.cursor() as cursor:
            for model in _ledger_models():
                cursor.execute("SELECT pg_relation_size(%s::regclass), pg_indexes_size(%s::regclass)",
                               [model._meta.db_table] * 2)
                table_bytes, index_bytes = cursor.fetchone()
                tables[model._meta.db_table] = {"table_bytes": table_bytes, "index_bytes": index_bytes}
        database_bytes = database_size("default")
        figures.update(database=main.settings_dict["NAME"], size_bytes=database_bytes, tables=tables)
    if database_bytes > settings.SIGNALHUB_MONITOR_DB_MAX_MB * MB:
        problems.append(Problem(WARNING, "db_size", f"main database is {database_bytes / MB:.0f} MB "
                                f"(over {settings.SIGNALHUB_MONITOR_DB_MAX_MB:g} MB): consider archive_signals"))
    archive = connections["archive"]
    try:
        rows, how = count_signals("archive")
        figures["archive"] = {"engine": archive.vendor, "size_bytes": database_size("archive"),
                              "signals": rows, "signals_count": how}
    except Exception as exc:  # an unreadable archive is reported, not fatal to the report
        logger.exception("cannot read the archive database")
        figures["archive"] = {"engine": archive.vendor, "error": str(exc)}
        problems.append(Problem(WARNING, "archive_unreadable", f"archive database cannot be read: {exc}"))
    return figures, problems


def signals_section(now):
    signals = Signal.objects.all()
    hour, day = now - timedelta(hours=1), now - timedelta(days=1)
    total, how = count_signals()
    last_hour = signals.filter(created_at__gte=hour).count()
    last_day = signals.filter(created_at__gte=day)
    last_day_count = last_day.count()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    per_day = []
    # One index range count per day instead of grouping by a date function
    # (on SQLite that is a Python function called for every row).
    for back in range(6, -1, -1):
        start = today - timedelta(days=back)
        per_day.append({"date": start.date().isoformat(),
                        "signals": signals.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1)).count()})
    top = list(last_day.values("symbol").annotate(signals=Count("id")).order_by("-signals", "symbol")[:TOP_SYMBOLS])
    week = signals.filter(created_at__gte=now - timedelta(days=7))
    outcomes = {row["outcome"] or "open": row["n"] for row in week.values("outcome").annotate(n=Count("id")).order_by()}
    latest = signals.order_by("-created_at").values("signal_id", "symbol", "created_at").first()
    figures = {
        "total": total,
        "total_count": how,
        "last_hour": last_hour,
        "last_24h": last_day_count,
        "per_day": per_day,
        "top_symbols_24h": top,
        "outcomes_7d": outcomes,
        # The partial index idx_open_timestamp holds exactly the open signals.
        "open_total": signals.filter(outcome__isnull=True).count(),
        "average_confidence_24h": last_day.aggregate(value=Avg("confidence"))["value"],
        "latest": latest and {**latest, "created_at": latest["created_at"].isoformat(),
                              "age_seconds": round((now - latest["created_at"]).total_seconds(), 1)},
        "rate_per_minute_last_hour": round(last_hour / 60, 2),
        "rate_per_hour_last_24h": round(last_day_count / 24, 2),
    }
    problems = []
    minimum = settings.SIGNALHUB_MONITOR_MIN_SIGNALS_LAST_HOUR
    if last_hour == 0:
        problems.append(Problem(WARNING, "no_recent_signal", "no signal in the last hour"
                                + (f" (latest {figures['latest']['age_seconds'] / 3600:.1f} h ago)" if latest else "")))
    elif last_hour < minimum:
        problems.append(Problem(WARNING, "few_recent_signals", f"only {last_hour} signals in the last hour (fewer than {minimum})"))
    if total > settings.SIGNALHUB_MONITOR_MAX_MAIN_SIGNALS:
        problems.append(Problem(WARNING, "main_table_large",
                                f"{'about ' if how != 'exact' else ''}{total} signals in the main database "
                                f"(over {settings.SIGNALHUB_MONITOR_MAX_MAIN_SIGNALS}): consider archive_signals"))
    return figures, problems


def declared_indexes():
    """Return ``{table: [index name, ...]}`` for every index the ledger's models declare in Meta."""
    return {model._meta.db_table: [index.name for index in model._meta.indexes] for model in _ledger_models()}


def missing_indexes(using="default"):
    """Return ``{table: [missing index name, ...]}``, empty when every declared index is present."""
    connection = connections[using]
    missing = {}
    with connection.cursor() as cursor:
        for table, names in declared_indexes().items():
            present = connection.introspection.get_constraints(cursor, table)
            absent = [name for name in names if name not in present]
            if absent:
                missing[table] = absent
    return missing


def indexes_section(now):
    missing = missing_indexes()
    figures = {"declared": declared_indexes(), "missing": missing}
    problems = [Problem(CRITICAL, "missing_index", f"index {name} is missing on {table}: queries on it scan the table")
                for table, names in missing.items() for name in names]
    return figures, problems


def write_path_section(now):
    """The journal backlog (signals.writepath.journal.backlog_stats), conflicts and quarantined records.

    A journal line older than SIGNALHUB_MONITOR_JOURNAL_MAX_AGE is CRITICAL: the
    signal is only in a file, not in the ledger, and the writer is stuck or down.
    Conflicts and quarantined records are WARNINGs: someone must look at them,
    but nothing is lost (both versions, or the raw record, are kept).
    """
    from signals.models import QuarantinedRecord, SignalConflict
    from signals.writepath.journal import backlog_stats

    stats = backlog_stats()
    conflicts, conflicts_how = bounded_count(SignalConflict.objects.all())
    quarantined, quarantined_how = bounded_count(QuarantinedRecord.objects.all())
    age = stats["oldest_pending_age_seconds"]
    figures = {
        "journal_directory": stats["directory"],
        "pending_signals": stats["pending_signals"],
        "oldest_pending_age_seconds": None if age is None else round(age, 1),
        "segments": stats["segments"],
        "conflicts": conflicts,
        "conflicts_count": conflicts_how,
        "quarantined_records": quarantined,
        "quarantined_count": quarantined_how,
    }
    problems = []
    if stats["problem"]:
        # log_signal refuses every signal while the directory is refused: nothing is journaled.
        problems.append(Problem(CRITICAL, "journal_unusable", f"the journal cannot be used: {stats['problem']}"))
    limit = settings.SIGNALHUB_MONITOR_JOURNAL_MAX_AGE
    if age is not None and age > limit:
        problems.append(Problem(CRITICAL, "journal_backlog", f"{stats['pending_signals']} signals wait in the journal, "
                                f"the oldest for {age:.0f} s (over {limit:g} s): is the flush running? "
                                "(manage.py flush_signals)"))
    if conflicts:
        problems.append(Problem(WARNING, "signal_conflicts", f"{'over ' if conflicts_how != 'exact' else ''}{conflicts} "
                                "signal conflicts (a signal_id sent again with other content): see the admin"))
    if quarantined:
        problems.append(Problem(WARNING, "quarantined_records", f"{'over ' if quarantined_how != 'exact' else ''}"
                                f"{quarantined} quarantined records (not stored): see the admin"))
    return figures, problems


SECTIONS = [
    ("storage", storage_section),
    ("signals", signals_section),
    ("write_path", write_path_section),
    ("indexes", indexes_section),
]


def gather_report(now=None, sections=None):
    """Return the Report: each section's figures and every problem found.

    ``sections`` defaults to the ledger's; signalhub.reports adds sync's.
    """
    now = now or timezone.now()
    report = Report(generated_at=now.isoformat())
    for name, section in sections or SECTIONS:
        try:
            figures, problems = section(now)
        except Exception as exc:
            logger.exception("monitor section %s failed", name)
            figures, problems = {"error": str(exc)}, [Problem(CRITICAL, f"{name}_unavailable", f"{name}: {exc}")]
        if figures is not None:
            report.sections[name] = figures
        report.problems.extend(problems)
    return report


# Rendering -----------------------------------------------------------------------------------

def _size(value):
    return "-" if value is None else f"{value / MB:.1f} MB"


def status_line(report):
    """Return the one-line summary (Nagios style): status, then each problem."""
    if not report.problems:
        signals = report.sections.get("signals", {})
        return f"SIGNALHUB OK - {signals.get('last_hour', '?')} signals in the last hour"
    return f"SIGNALHUB {report.status} - " + "; ".join(f"{p.severity.upper()}: {p.text}" for p in report.problems)


def render_text(report, others=None):
    """Return the report as text for a terminal.

    ``others`` maps another app's section name to a function returning its
    lines, shown after the write path (signalhub.reports passes sync's).
    """
    others = others or {}
    lines = [status_line(report), f"generated {report.generated_at}", ""]
    storage = report.sections.get("storage")
    if storage:
        lines.append("Storage")
        if "file" in storage:
            lines.append(f"  SQLite {storage['file']}: {_size(storage['size_bytes'])}, "
                         f"WAL {_size(storage['wal_bytes'])}, SHM {_size(storage['shm_bytes'])}")
        else:
            lines.append(f"  PostgreSQL {storage.get('database')}: {_size(storage.get('size_bytes'))}")
            for table, sizes in storage.get("tables", {}).items():
                lines.append(f"    {table}: table {_size(sizes['table_bytes'])}, indexes {_size(sizes['index_bytes'])}")
        archive = storage.get("archive", {})
        if "error" in archive:
            lines.append(f"  archive ({archive['engine']}): unreadable: {archive['error']}")
        else:
            lines.append(f"  archive ({archive.get('engine')}): {_size(archive.get('size_bytes'))}, "
                         f"{archive.get('signals')} signals ({archive.get('signals_count')})")
    signals = report.sections.get("signals")
    if signals and "error" not in signals:
        lines += ["", "Signals",
                  f"  total in main: {signals['total']} ({signals['total_count']})",
                  f"  last hour: {signals['last_hour']} ({signals['rate_per_minute_last_hour']}/min), "
                  f"last 24 h: {signals['last_24h']} ({signals['rate_per_hour_last_24h']}/h)",
                  "  per day: " + ", ".join(f"{day['date']} {day['signals']}" for day in signals["per_day"]),
                  "  top symbols (24 h): " + (", ".join(f"{row['symbol']} {row['signals']}" for row in signals["top_symbols_24h"]) or "none"),
                  "  outcomes (7 days): " + (", ".join(f"{name} {n}" for name, n in sorted(signals["outcomes_7d"].items())) or "none"),
                  f"  open now: {signals['open_total']}",
                  "  average confidence (24 h): " + ("-" if signals["average_confidence_24h"] is None
                                                     else f"{signals['average_confidence_24h']:.1f}")]
        latest = signals["latest"]
        lines.append(f"  latest: {latest['signal_id']} {latest['symbol']} at {latest['created_at']} "
                     f"({latest['age_seconds']:.0f} s ago)" if latest else "  latest: none")
    write_path = report.sections.get("write_path")
    if write_path and "error" not in write_path:
        age = write_path["oldest_pending_age_seconds"]
        lines += ["", "Write path",
                  f"  journal {write_path['journal_directory']}: {write_path['pending_signals']} signals pending in "
                  f"{write_path['segments']} segments" + ("" if age is None else f", oldest {age:.0f} s"),
                  f"  conflicts: {write_path['conflicts']} ({write_path['conflicts_count']}), "
                  f"quarantined records: {write_path['quarantined_records']} ({write_path['quarantined_count']})"]
    for name, render in others.items():
        figures = report.sections.get(name)
        if figures and "error" not in figures:
            lines += render(figures)
    for name in ("write_path", *others):
        if "error" in report.sections.get(name, {}):
            lines += ["", name.replace("_", " ").capitalize(), f"  unreadable: {report.sections[name]['error']}"]
    indexes = report.sections.get("indexes")
    if indexes and "error" not in indexes:
        declared = sum(len(names) for names in indexes["declared"].values())
        absent = sum(len(names) for names in indexes["missing"].values())
        lines += ["", "Indexes", f"  {declared - absent} of {declared} declared indexes present"]
        lines += [f"  MISSING {table}.{name}" for table, names in indexes["missing"].items() for name in names]
    if report.problems:
        lines += ["", "Problems"]
        lines += [f"  {p.severity.upper()} {p.code}: {p.text}" for p in report.problems]
    return "\n".join(lines)
