"""Django admin for aiwaf's data: bans, exemptions, learned keywords, block events (with their
evidence) and the request log.

Adding or removing a ban or an exemption runs the same code as ``aiwaf blacklist add`` /
``aiwaf exempt add`` (an exemption lifts the address's bans; the ban ladder counts offences);
every running worker, and ``aiwaf serve`` on the same database, applies it within a second.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html

from aiwaf import conf
from aiwaf.models import BlacklistEntry, BlockEvent, DynamicKeyword, IPExemption, RequestLog


def _cli(request, args: list[str]) -> None:
    """Runs the change once the admin's own transaction has committed: the store writes through
    a connection of its own, which must not interleave with a transaction of Django's (SQLite
    would refuse Django's next write)."""
    transaction.on_commit(lambda: _run(request, args))


def _run(request, args: list[str]) -> bool:
    try:
        code = conf.run_cli(args)
    except Exception as e:  # noqa: BLE001 - shown to the operator, never a 500
        messages.error(request, f"aiwaf {' '.join(args[:2])}: {e}")
        return False
    if code != 0:
        messages.error(request, f"aiwaf {' '.join(args[:2])} failed (exit code {code})")
        return False
    return True


class DeletesOneByOne:
    """Bulk deletion as single deletions (each through the CLI's code)."""

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


class BanForm(forms.ModelForm):
    ttl = forms.CharField(required=False, help_text="Ban length, e.g. 30m or 24h; empty: permanent")

    class Meta:
        model = BlacklistEntry
        fields = ["ip_address", "reason"]


@admin.register(BlacklistEntry)
class BlacklistEntryAdmin(DeletesOneByOne, admin.ModelAdmin):
    form = BanForm
    list_display = ["ip_address", "reason", "detector", "created_at", "expires_at", "offences"]
    list_filter = ["detector"]
    search_fields = ["ip_address", "reason"]

    def get_readonly_fields(self, request, obj=None):
        return ["ip_address", "reason", "detector", "evidence", "offences"] if obj else []

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        args = ["blacklist", "add", obj.ip_address, "--reason", obj.reason or "Manual ban"]
        if form.cleaned_data.get("ttl"):
            args += ["--ttl", form.cleaned_data["ttl"]]
        _cli(request, args)

    def delete_model(self, request, obj):
        _cli(request, ["blacklist", "remove", obj.ip_address])


@admin.register(IPExemption)
class IPExemptionAdmin(DeletesOneByOne, admin.ModelAdmin):
    list_display = ["ip_address", "reason", "created_at"]
    search_fields = ["ip_address", "reason"]
    fields = ["ip_address", "reason"]

    def get_readonly_fields(self, request, obj=None):
        return ["ip_address"] if obj else []

    def save_model(self, request, obj, form, change):
        _cli(request, ["exempt", "add", obj.ip_address, "--reason", obj.reason or ""])

    def delete_model(self, request, obj):
        _cli(request, ["exempt", "remove", obj.ip_address])


@admin.register(DynamicKeyword)
class DynamicKeywordAdmin(DeletesOneByOne, admin.ModelAdmin):
    list_display = ["keyword", "count", "last_updated"]
    search_fields = ["keyword"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        _cli(request, ["keywords", "remove", obj.keyword])


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BlockEvent)
class BlockEventAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "ip", "method", "path", "detector", "action", "reason", "request_id"]
    list_filter = ["detector", "action", "mode"]
    search_fields = ["ip", "path", "request_id", "reason"]
    fields = ["timestamp", "request_id", "ip", "method", "path", "detector", "action", "mode", "reason", "evidence_block"]
    readonly_fields = fields

    @admin.display(description="evidence")
    def evidence_block(self, obj):
        return format_html("<pre>{}</pre>", obj.evidence_pretty())


@admin.register(RequestLog)
class RequestLogAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "ip_address", "method", "path", "status_code", "response_time_ms", "blocked"]
    list_filter = ["method", "status_code", "blocked"]
    search_fields = ["ip_address", "path", "user_agent"]
