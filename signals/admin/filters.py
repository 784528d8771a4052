"""The Signal admin's filters: fixed choices, so building the sidebar runs no query.

Django's default field filters list the distinct values in the table
(``SELECT DISTINCT``, a whole-table read on every page) and a date filter
built on ``date_hierarchy`` scans every row's date. Each filter here has its
choices written down and filters on one indexed or cheap condition.
"""

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

# Asset types the generators send; anything else is still stored and searchable.
ASSET_TYPES = ("stock", "crypto", "etf", "forex", "future")
# (parameter value, label, lower bound inclusive, upper bound exclusive)
CONFIDENCE_BANDS = (
    ("90", "90 and above", 90, None),
    ("75", "75 to 90", 75, 90),
    ("55", "55 to 75", 55, 75),
    ("0", "below 55", None, 55),
)


class _FixedChoiceFilter(admin.SimpleListFilter):
    choices_ = ()

    def lookups(self, request, model_admin):
        return self.choices_

    def _value(self):
        value = self.value()
        return value if value in dict(self.choices_) else None


class ActionFilter(_FixedChoiceFilter):
    title = "action"
    parameter_name = "action"
    choices_ = (("BUY", "Buy"), ("SELL", "Sell"))

    def queryset(self, request, queryset):
        value = self._value()
        return queryset.filter(action=value) if value else queryset


class OutcomeFilter(_FixedChoiceFilter):
    title = "outcome"
    parameter_name = "outcome"
    choices_ = (("open", "Open"), ("win", "Win"), ("loss", "Loss"), ("expired", "Expired"))

    def queryset(self, request, queryset):
        value = self._value()
        if value == "open":
            # Served by the partial index idx_open_timestamp when counted.
            return queryset.filter(outcome__isnull=True)
        return queryset.filter(outcome=value) if value else queryset


class AssetTypeFilter(_FixedChoiceFilter):
    title = "asset type"
    parameter_name = "asset_type"
    choices_ = tuple((value, value.capitalize() if value != "etf" else "ETF") for value in ASSET_TYPES)

    def queryset(self, request, queryset):
        value = self._value()
        return queryset.filter(asset_type=value) if value else queryset


class ConfidenceBandFilter(_FixedChoiceFilter):
    title = "confidence"
    parameter_name = "confidence"
    choices_ = tuple((value, label) for value, label, _low, _high in CONFIDENCE_BANDS)

    def queryset(self, request, queryset):
        value = self._value()
        if not value:
            return queryset
        _value, _label, low, high = next(band for band in CONFIDENCE_BANDS if band[0] == value)
        if low is not None:
            queryset = queryset.filter(confidence__gte=low)
        if high is not None:
            queryset = queryset.filter(confidence__lt=high)
        return queryset


class CreatedFilter(_FixedChoiceFilter):
    """When SignalHub stored the signal: a range on created_at, which the list's index serves."""

    title = "stored"
    parameter_name = "created"
    choices_ = (("today", "Today"), ("7d", "Past 7 days"), ("30d", "Past 30 days"), ("older", "Older than 30 days"))

    def queryset(self, request, queryset):
        value = self._value()
        now = timezone.now()
        if value == "today":
            return queryset.filter(created_at__gte=timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0))
        if value == "7d":
            return queryset.filter(created_at__gte=now - timedelta(days=7))
        if value == "30d":
            return queryset.filter(created_at__gte=now - timedelta(days=30))
        if value == "older":
            return queryset.filter(created_at__lt=now - timedelta(days=30))
        return queryset
