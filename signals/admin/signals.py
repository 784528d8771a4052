"""The Signal admin: browse, search, inspect and export the ledger, fast at millions of rows.

What keeps each page's cost independent of the table's size:

- the list is always newest first, ``ORDER BY created_at DESC, id DESC``
  (the admin adds the primary key as a tie-break), read straight off the
  ``idx_created_id`` index; columns are not sortable, since any other order
  would sort the whole table;
- filters have fixed choices (no ``SELECT DISTINCT``) and no date hierarchy;
- search compares whole values, ``=`` on indexed columns (never ``LIKE '%x%'``);
- the row count is an estimate for the unfiltered list and capped for a
  filtered one (``signals.admin.paging``); facet counts are off.

Rows are the generator's record, so nothing is editable here: no add, no
change, no delete (rows leave the ledger only by archiving).
"""

from datetime import UTC

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, IGNORED_PARAMS, PAGE_VAR, ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseBadRequest
from django.urls import path
from django.utils.html import format_html

from signalhub.admin_mixins import (
    CheckedAdminMixin, ReadOnlyAdminMixin, may_operate_deliveries, nul_parameter, parameter_name_for_display, refuse_nul,
)
from signals.admin import export
from signals.admin.filters import ActionFilter, AssetTypeFilter, ConfidenceBandFilter, CreatedFilter, OutcomeFilter
from signals.admin.paging import BoundedCountPaginator
from signals.ledger.hashing import canonical_timestamp
from signals.ledger.validation import SYMBOL_RE
from signals.models import MAX_LENGTHS, Signal

# A search term matching more order ids than this is not an order id.
SEARCH_ID_LIMIT = 1_000
# Query parameters of the change list that are not filters (search, page, ...).
NOT_FILTERS = frozenset((*IGNORED_PARAMS, PAGE_VAR, ERROR_FLAG))


class SignalChangeList(ChangeList):
    def get_ordering_field(self, field_name):
        # No column is sortable; without this, a hand-written ?o=6 would still
        # sort the whole table by confidence.
        return None


class _QueryOnlyChangeList(SignalChangeList):
    """A change list that builds the filtered queryset and stops: no count, no page."""

    def get_results(self, request):
        pass


@admin.register(Signal)
class SignalAdmin(CheckedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "time_display", "symbol", "action", "entry_price", "target_price", "stop_price",
        "confidence", "outcome_display", "pnl_display", "strategy", "signal_id",
    )
    list_display_links = ("time_display",)
    list_filter = (ActionFilter, OutcomeFilter, AssetTypeFilter, ConfidenceBandFilter, CreatedFilter)
    # Only used to show the search box and its help: get_search_results does the work.
    search_fields = ("=signal_id", "=order_id", "=symbol")
    search_help_text = "Exact signal id, order id or symbol (e.g. BTC-USD)."
    ordering = ("-created_at",)
    sortable_by = ()
    list_per_page = 100
    paginator = BoundedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    fieldsets = (
        ("Signal", {"fields": (
            "signal_id", "symbol", "action", "entry_price", "target_price", "stop_price",
            "confidence", "strategy", "asset_type", "data_source", "timestamp_utc",
        )}),
        ("Verification", {"fields": ("sha256", "hash_status", "legacy_sha256")}),
        ("Context from the generator", {"fields": (
            "reasoning", "regime", "consensus_agreement", "sources_count", "service_type",
            "generated_by", "metadata",
        )}),
        ("Lifecycle", {"fields": (
            "outcome_display", "exit_price", "exit_timestamp_utc", "profit_loss_pct", "order_id", "executor_id",
        )}),
        ("Stored", {"fields": ("created_at_utc", "id")}),
    )

    def get_changelist(self, request, **kwargs):
        return SignalChangeList

    def changelist_view(self, request, extra_context=None):
        # The template offers the CSV export only to those who may run it.
        extra_context = {**(extra_context or {}), "can_export": self.has_export_permission(request)}
        return super().changelist_view(request, extra_context=extra_context)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.concrete_fields] + [
            "hash_status", "outcome_display", "pnl_display", "timestamp_utc", "exit_timestamp_utc", "created_at_utc"]

    # Columns ----------------------------------------------------------------------

    @admin.display(description="time (UTC)")
    def time_display(self, obj):
        return obj.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

    # Full precision, in the one form the hash uses (the default format stops at minutes).
    @admin.display(description="timestamp (UTC)")
    def timestamp_utc(self, obj):
        return canonical_timestamp(obj.timestamp)

    @admin.display(description="exit timestamp (UTC)")
    def exit_timestamp_utc(self, obj):
        return canonical_timestamp(obj.exit_timestamp) if obj.exit_timestamp else None

    @admin.display(description="created at (UTC)")
    def created_at_utc(self, obj):
        return canonical_timestamp(obj.created_at)

    @admin.display(description="outcome")
    def outcome_display(self, obj):
        return obj.outcome or "open"

    @admin.display(description="P&L %")
    def pnl_display(self, obj):
        return "" if obj.profit_loss_pct is None else f"{obj.profit_loss_pct:+.2f}"

    @admin.display(description="hash verification")
    def hash_status(self, obj):
        if obj.hash_matches():
            return format_html('<span style="color: green">{}</span>', "\u2714 matches the signal's fields")
        return format_html(
            '<span style="color: #ba2121">\u2718 does not match: the fields give {}</span>', obj.expected_hash())

    # Search: whole values on indexed columns --------------------------------------

    def get_search_results(self, request, queryset, search_term):
        """Return rows whose signal_id, order_id or symbol equals the term.

        A single ``signal_id = x OR order_id = x OR symbol = X`` would make the
        database collect every row of a frequent symbol and sort them. So the
        id lookups (one unique index, one partial index) run first, and the
        symbol is filtered alone when it is the only match, which
        ``idx_symbol_created`` serves in list order.
        """
        refuse_nul(request.GET)  # also reached from the autocomplete view
        term = search_term.strip()
        if not term:
            return queryset, False
        ids = []
        if len(term) <= MAX_LENGTHS["signal_id"]:
            ids = list(Signal.objects.filter(Q(signal_id=term) | Q(order_id=term))
                       .order_by().values_list("pk", flat=True)[:SEARCH_ID_LIMIT])
        symbol = term.upper()
        is_symbol = (len(symbol) <= MAX_LENGTHS["symbol"] and SYMBOL_RE.fullmatch(symbol)
                     and Signal.objects.filter(symbol=symbol).exists())
        if ids and is_symbol:
            return queryset.filter(Q(pk__in=ids) | Q(symbol=symbol)), False
        if is_symbol:
            return queryset.filter(symbol=symbol), False
        return queryset.filter(pk__in=ids), False

    # CSV export of the current list ------------------------------------------------

    def get_urls(self):
        export_url = path(
            "export/", self.admin_site.admin_view(self.export_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_export")
        return [export_url, *super().get_urls()]

    def filtered_queryset(self, request):
        """Return the rows the change list shows for this request's filters and search, in list order."""
        changelist = _QueryOnlyChangeList(
            request, self.model, self.get_list_display(request), self.get_list_display_links(request, self.list_display),
            self.get_list_filter(request), self.date_hierarchy, self.get_search_fields(request),
            self.get_list_select_related(request), self.list_per_page, self.list_max_show_all,
            self.list_editable, self, self.get_sortable_by(request), self.search_help_text,
        )
        return changelist.queryset

    def has_export_permission(self, request):
        """Exporting copies the ledger out of SignalHub, so it takes more than viewing it."""
        return self.has_view_permission(request) and may_operate_deliveries(request.user)

    def export_view(self, request):
        if not self.has_export_permission(request):
            raise PermissionDenied
        # As the list refuses it (a 400), never an export of the unfiltered ledger.
        nul = nul_parameter(request.GET)
        if nul is not None:
            return _refusal(f"Cannot export: the value of {parameter_name_for_display(nul)} holds a NUL character.")
        allowed = self.declared_lookups(request)
        refused = sorted(key for key in request.GET if key not in NOT_FILTERS and key not in allowed)
        if refused:
            return _refusal(f"Cannot export: filtering by {parameter_name_for_display(refused[0])} is not allowed.")
        try:
            queryset = self.filtered_queryset(request)
        except IncorrectLookupParameters:
            return _refusal("Cannot export: a filter's value is not valid.")
        return export.csv_response(queryset)


def _refusal(message):
    # Plain text, and the message never carries the request's own text: a
    # browser has nothing to render or run.
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
