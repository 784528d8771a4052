"""Staff review of deliveries: read-only rows written by the worker, with actions."""

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from signalhub.admin_mixins import CheckedAdminMixin, OperateDeliveryPermissionMixin, ReadOnlyAdminMixin
from sync import delivery
from sync.models import Delivery, DeliveryAttempt, Destination
from sync.status import sync_summary

# Most rows one "retry now" sends from the web request; more go through "retry dead since".
MANUAL_RETRY_LIMIT = 100


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    BANDS = {"1h": (None, timedelta(hours=1)), "1d": (timedelta(hours=1), timedelta(days=1)),
             "7d": (timedelta(days=1), timedelta(days=7)), "older": (timedelta(days=7), None)}

    def lookups(self, request, model_admin):
        return [("1h", "under an hour"), ("1d", "1 hour to 1 day"), ("7d", "1 to 7 days"), ("older", "over 7 days")]

    def queryset(self, request, queryset):
        if self.value() not in self.BANDS:
            return queryset
        now = timezone.now()
        younger, older = self.BANDS[self.value()]
        if younger is not None:
            queryset = queryset.filter(queued_at__lte=now - younger)
        if older is not None:
            queryset = queryset.filter(queued_at__gt=now - older)
        return queryset


class AttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeliveryAttempt
    fields = ("started_at", "trigger", "status_code", "error_class", "duration_ms", "error", "response_body")
    readonly_fields = fields
    extra = 0
    max_num = 0
    ordering = ("-started_at",)


class RetryDeadForm(forms.Form):
    since = forms.DateTimeField(help_text="Dead deliveries whose last attempt was at or after this time (UTC).")


@admin.register(Delivery)
class DeliveryAdmin(CheckedAdminMixin, OperateDeliveryPermissionMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    change_list_template = "admin/sync/delivery/change_list.html"
    list_display = ("signal_link", "symbol", "state", "attempt_count", "last_status_code", "error_class",
                    "short_error", "next_attempt_at", "queued_at", "delivered_at")
    list_filter = ("state", "last_status_code", "error_class", AgeFilter)
    search_fields = ("=signal__signal_id", "=signal__symbol", "=alpine_signal_id")
    list_select_related = ("signal",)
    ordering = ("-queued_at",)
    show_full_result_count = False
    actions = ("retry_now", "cancel_deliveries")
    inlines = (AttemptInline,)
    fields = ("signal_details", "state", "attempt_count", "next_attempt_at", "lease_until", "lease_owner",
              "last_status_code", "error_class", "last_error", "first_attempt_at", "last_attempt_at",
              "delivered_at", "alpine_signal_id", "queued_at", "updated_at")
    readonly_fields = fields

    @admin.display(description="signal", ordering="signal__signal_id")
    def signal_link(self, obj):
        return obj.signal.signal_id

    @admin.display(ordering="signal__symbol")
    def symbol(self, obj):
        return obj.signal.symbol

    @admin.display(description="last error")
    def short_error(self, obj):
        return obj.last_error[:120]

    @admin.display(description="signal")
    def signal_details(self, obj):
        s = obj.signal
        rows = [("signal_id", s.signal_id), ("symbol", s.symbol), ("action", s.action),
                ("entry / target / stop", f"{s.entry_price:g} / {s.target_price} / {s.stop_price}"),
                ("confidence", f"{s.confidence:g}"), ("strategy", s.strategy), ("timestamp", s.timestamp),
                ("hash", s.sha256), ("reasoning", s.reasoning or "(none)"), ("stored", s.created_at)]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    def get_fields(self, request, obj=None):
        # The signal's own text (its reasoning) is for those who may view signals.
        fields = super().get_fields(request, obj)
        if request.user.has_perm("signals.view_signal"):
            return fields
        return [name for name in fields if name != "signal_details"]

    @admin.action(description="Retry now (selected)", permissions=("operate_delivery",))
    def retry_now(self, request, queryset):
        pks = list(queryset.values_list("pk", flat=True)[:MANUAL_RETRY_LIMIT + 1])
        if len(pks) > MANUAL_RETRY_LIMIT:
            self.message_user(request, f"Select at most {MANUAL_RETRY_LIMIT} deliveries to retry now; use "
                                       "\"Retry dead deliveries since...\" for more.", messages.ERROR)
            return
        result = delivery.retry_now(pks)
        if result.skipped_reason:
            self.message_user(request, f"Nothing sent: {result.skipped_reason}.", messages.WARNING)
            return
        level = messages.SUCCESS if result.delivered == result.claimed else messages.WARNING
        self.message_user(request, f"Retried {result.claimed}: {result.delivered} delivered, {result.dead} dead, "
                                   f"{result.released} still failing (their schedule unchanged).", level)

    @admin.action(description="Cancel (selected, not yet delivered)", permissions=("operate_delivery",))
    def cancel_deliveries(self, request, queryset):
        count = queryset.cancel()
        self.message_user(request, f"Cancelled {count} deliveries.", messages.SUCCESS)

    def get_urls(self):
        return [path("retry-dead/", self.admin_site.admin_view(self.retry_dead_view), name="sync_delivery_retry_dead"),
                *super().get_urls()]

    def retry_dead_view(self, request):
        if not self.has_operate_delivery_permission(request):
            raise PermissionDenied
        form = RetryDeadForm(request.POST or None, initial={"since": timezone.now() - timedelta(days=1)})
        if request.method == "POST" and form.is_valid():
            from django_q.tasks import async_task

            since = form.cleaned_data["since"]
            async_task("sync.tasks.retry_dead_since", since.isoformat(), settings.SIGNALHUB_SYNC_REQUEUE_LIMIT,
                       task_name=f"retry dead deliveries since {since:%Y-%m-%d %H:%M}")
            waiting = Delivery.objects.dead_since(since).count()
            self.message_user(request, f"Queued in the background: up to {min(waiting, settings.SIGNALHUB_SYNC_REQUEUE_LIMIT)} "
                                       f"dead deliveries since {since:%Y-%m-%d %H:%M} UTC go back to pending.",
                              messages.SUCCESS)
            return redirect("admin:sync_delivery_changelist")
        context = {**self.admin_site.each_context(request), "form": form, "title": "Retry dead deliveries since...",
                   "opts": self.model._meta, "limit": settings.SIGNALHUB_SYNC_REQUEUE_LIMIT}
        return TemplateResponse(request, "admin/sync/delivery/retry_dead.html", context)

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            # Refused before the summary's queries run.
            raise PermissionDenied
        summary = sync_summary()
        extra_context = {**(extra_context or {}), "sync_summary": summary,
                         "state_counts": list(summary["counts"].items()),
                         "retry_dead_url": (reverse("admin:sync_delivery_retry_dead")
                                            if self.has_operate_delivery_permission(request) else None),
                         "destination": Destination.objects.alpine()}
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(Destination)
class DestinationAdmin(CheckedAdminMixin, OperateDeliveryPermissionMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "paused", "paused_until", "pause_reason", "consecutive_failures", "last_success_at",
                    "last_status_code", "last_error_at", "last_error")
    readonly_fields = ("name", "consecutive_failures", "paused_until", "paused_at", "pause_reason",
                       "last_status_code", "last_error", "last_error_at", "last_success_at")
    fields = readonly_fields
    actions = ("resume_now",)

    @admin.display(boolean=True)
    def paused(self, obj):
        return obj.is_paused()

    @admin.action(description="Resume now (lift the pause)", permissions=("operate_delivery",))
    def resume_now(self, request, queryset):
        for destination in queryset:
            destination.resume()
        self.message_user(request, f"Resumed {queryset.count()} destination(s); the next pass delivers.", messages.SUCCESS)
