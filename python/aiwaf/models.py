"""The storage's tables as Django models, for the admin and for queries.

The schema belongs to the Rust store (``manage.py migrate`` runs its migrations, the same ones
``aiwaf serve`` runs), so these models are unmanaged. Times are stored in milliseconds since
the epoch; the ``created_at``-style properties give datetimes. Changes to bans and exemptions go
through the same code as the ``aiwaf`` CLI (see ``admin.py``), and every running worker applies
them within a second.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from django.db import models


def _dt(ms):
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


class BlacklistEntry(models.Model):
    ip_address = models.TextField("IP address", primary_key=True, db_column="ip")
    reason = models.TextField()
    detector = models.TextField(default="manual")
    evidence = models.TextField(default="{}")
    created_ms = models.BigIntegerField(db_column="created_at")
    expires_ms = models.BigIntegerField(db_column="expires_at", null=True, blank=True)
    offences = models.BigIntegerField(default=1)

    class Meta:
        managed = False
        db_table = "aiwaf_blacklist"
        verbose_name = "blacklist entry"
        verbose_name_plural = "blacklist"
        ordering = ["-created_ms"]

    @property
    def created_at(self):
        return _dt(self.created_ms)

    @property
    def expires_at(self):
        return _dt(self.expires_ms)

    def __str__(self):
        return self.ip_address


class IPExemption(models.Model):
    ip_address = models.TextField("IP address or network", primary_key=True, db_column="net")
    reason = models.TextField(blank=True, default="")
    created_ms = models.BigIntegerField(db_column="created_at")

    class Meta:
        managed = False
        db_table = "aiwaf_exemptions"
        verbose_name = "IP exemption"
        ordering = ["-created_ms"]

    @property
    def created_at(self):
        return _dt(self.created_ms)

    def __str__(self):
        return self.ip_address


class DynamicKeyword(models.Model):
    keyword = models.TextField(primary_key=True)
    count = models.BigIntegerField(default=0)
    updated_ms = models.BigIntegerField(db_column="updated_at")

    class Meta:
        managed = False
        db_table = "aiwaf_keywords"
        verbose_name = "learned keyword"
        ordering = ["-count"]

    @property
    def last_updated(self):
        return _dt(self.updated_ms)

    def __str__(self):
        return self.keyword


class BlockEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    request_id = models.TextField()
    ts = models.BigIntegerField()
    ip = models.TextField()
    method = models.TextField()
    path = models.TextField()
    detector = models.TextField()
    action = models.TextField()
    reason = models.TextField()
    evidence = models.TextField()
    mode = models.TextField()

    class Meta:
        managed = False
        db_table = "aiwaf_events"
        verbose_name = "block event"
        ordering = ["-ts"]

    @property
    def timestamp(self):
        return _dt(self.ts)

    def evidence_pretty(self) -> str:
        try:
            return json.dumps(json.loads(self.evidence), indent=2, ensure_ascii=False)
        except ValueError:
            return self.evidence

    def __str__(self):
        return f"{self.detector} {self.action} {self.ip} {self.path}"


class RequestLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    request_id = models.TextField()
    ts = models.BigIntegerField()
    ip_address = models.TextField(db_column="ip")
    method = models.TextField()
    path = models.TextField()
    query = models.TextField(default="")
    status_code = models.IntegerField(db_column="status")
    response_time_ms = models.FloatField()
    user_agent = models.TextField(default="")
    referer = models.TextField(default="")
    content_length = models.BigIntegerField(null=True)
    blocked = models.BooleanField(default=False)

    class Meta:
        managed = False
        db_table = "aiwaf_request_log"
        verbose_name = "request log entry"
        verbose_name_plural = "request log"
        ordering = ["-ts"]

    @property
    def timestamp(self):
        return _dt(self.ts)

    @property
    def response_time(self):
        """Seconds, as the seed's field."""
        return self.response_time_ms / 1000.0

    def __str__(self):
        return f"{self.method} {self.path} {self.status_code}"
