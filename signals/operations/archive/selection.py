"""Which signals move: the archive cut-off, the selections, and the rows that move with a signal."""

from datetime import UTC, datetime

from dateutil.relativedelta import relativedelta
from django.core.exceptions import ImproperlyConfigured
from django.db import router
from django.db.models import Exists, OuterRef
from django.utils import timezone

from signalhub.dates import parse_moment
from signals.models import Signal

MAIN = "default"
ARCHIVE = "archive"


def archive_cutoff(*, months=None, before=None, now=None):
    """Return the aware UTC datetime below which signals are archived.

    ``months`` counts calendar months back from today's date in UTC, at
    midnight (a re-run the same day uses the same cut-off); ``before`` is a
    date (midnight UTC) or an ISO datetime (naive means UTC).
    """
    if before is not None:
        if isinstance(before, str):
            return parse_moment(before)
        if not isinstance(before, datetime):
            before = datetime(before.year, before.month, before.day, tzinfo=UTC)
        return before if timezone.is_aware(before) else before.replace(tzinfo=UTC)
    today = (now or timezone.now()).astimezone(UTC).date()
    start = today - relativedelta(months=12 if months is None else months)
    return datetime(start.year, start.month, start.day, tzinfo=UTC)


def keep_undelivered_in_main(signals):
    """Leave out of ``signals`` those whose delivery to Alpine is not finished.

    A row hanging off a signal (found through the model meta, as the rows that
    move are) holds it in the main database while its default manager's
    ``undelivered()`` selects it: the delivery app's Delivery (pending,
    sending, retrying) does, so the ledger never names that app. Written as
    NOT EXISTS over the row's index on its signal: one index lookup per
    candidate signal, where ``pk NOT IN (undelivered)`` would read the whole
    delivery table for every batch on SQLite (a bound state list hides the
    partial index from its planner).
    """
    for relation in Signal._meta.related_objects:
        undelivered = getattr(relation.related_model._default_manager, "undelivered", None)
        if relation.many_to_many or undelivered is None:
            continue
        signals = signals.exclude(Exists(undelivered().filter(**{relation.field.name: OuterRef("pk")})))
    return signals


def signals_to_archive(cutoff, *, include_undelivered=False, using=MAIN):
    signals = Signal._base_manager.using(using).filter(created_at__lt=cutoff)
    return signals if include_undelivered else keep_undelivered_in_main(signals)


def signals_to_restore(*, since=None, until=None, symbols=None, signal_ids=None, using=ARCHIVE):
    signals = Signal._base_manager.using(using).all()
    if since is not None:
        signals = signals.filter(created_at__gte=since)
    if until is not None:
        signals = signals.filter(created_at__lt=until)
    if symbols:
        signals = signals.filter(symbol__in=symbols)
    if signal_ids:
        signals = signals.filter(signal_id__in=signal_ids)
    return signals


# The rows that move with a signal ----------------------------------------------------------

def related_links(model=Signal, _seen=None):
    """Return ``[(child model, foreign key field), ...]`` below ``model``, parents before children."""
    _seen = _seen or {model}
    links = []
    for relation in model._meta.related_objects:
        if relation.many_to_many or not relation.field.concrete:
            continue  # no many-to-many relation hangs off a signal
        child = relation.related_model
        if child in _seen:
            continue
        _seen.add(child)
        links.append((child, relation.field))
        links.extend(related_links(child, _seen))
    return links


def _check_links_can_move(links, using):
    for model, _ in links:
        if not router.allow_migrate_model(using, model):
            raise ImproperlyConfigured(
                f"{model._meta.label} moves with signals but has no table in the {using!r} database; "
                f"add its app to signalhub.routers.ARCHIVED_APPS so its rows move with their signals.")


def referenced_links(links):
    """Return ``[(model, foreign key), ...]``: foreign keys of moving rows to rows that do not move.

    Such rows are copied to the target when missing there, never deleted from
    the source and never overwritten in the target. (Delivery rows today
    point to no Destination, so this finds none; a model that does
    point outside the moving set is handled without a change here.)
    """
    moving = {Signal, *(child for child, _ in links)}
    return [(model, field) for model in moving for field in model._meta.concrete_fields
            if field.is_relation and field.related_model not in moving]
