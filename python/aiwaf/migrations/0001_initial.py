"""Creates aiwaf's storage schema in the project's database.

The tables belong to the Rust store: this migration runs the store's own migrations (the ones
``aiwaf serve`` and the ``aiwaf`` CLI run), so every shape of aiwaf reads the same schema. The
models are unmanaged views of those tables for the admin.
"""

from django.db import migrations, models


def create_store(apps, schema_editor):
    from aiwaf import _core, conf

    alias = getattr(conf.django_settings, "AIWAF_DATABASE_ALIAS", None) or "default"
    if schema_editor.connection.alias != alias:
        return
    _core.migrate(conf.core_settings())


def unmanaged(name, table, fields, ordering):
    return migrations.CreateModel(
        name=name,
        fields=fields,
        options={"managed": False, "db_table": table, "ordering": ordering},
    )


class Migration(migrations.Migration):
    initial = True
    # the store migrates through its own connection: no Django transaction may hold the
    # database meanwhile (SQLite would make it wait for the lock)
    atomic = False
    dependencies = []

    operations = [
        migrations.RunPython(create_store, migrations.RunPython.noop, elidable=False),
        unmanaged(
            "BlacklistEntry",
            "aiwaf_blacklist",
            [
                ("ip_address", models.TextField(primary_key=True, db_column="ip", serialize=False)),
                ("reason", models.TextField()),
                ("detector", models.TextField(default="manual")),
                ("evidence", models.TextField(default="{}")),
                ("created_ms", models.BigIntegerField(db_column="created_at")),
                ("expires_ms", models.BigIntegerField(db_column="expires_at", null=True, blank=True)),
                ("offences", models.BigIntegerField(default=1)),
            ],
            ["-created_ms"],
        ),
        unmanaged(
            "IPExemption",
            "aiwaf_exemptions",
            [
                ("ip_address", models.TextField(primary_key=True, db_column="net", serialize=False)),
                ("reason", models.TextField(blank=True, default="")),
                ("created_ms", models.BigIntegerField(db_column="created_at")),
            ],
            ["-created_ms"],
        ),
        unmanaged(
            "DynamicKeyword",
            "aiwaf_keywords",
            [
                ("keyword", models.TextField(primary_key=True, serialize=False)),
                ("count", models.BigIntegerField(default=0)),
                ("updated_ms", models.BigIntegerField(db_column="updated_at")),
            ],
            ["-count"],
        ),
        unmanaged(
            "BlockEvent",
            "aiwaf_events",
            [
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("request_id", models.TextField()),
                ("ts", models.BigIntegerField()),
                ("ip", models.TextField()),
                ("method", models.TextField()),
                ("path", models.TextField()),
                ("detector", models.TextField()),
                ("action", models.TextField()),
                ("reason", models.TextField()),
                ("evidence", models.TextField()),
                ("mode", models.TextField()),
            ],
            ["-ts"],
        ),
        unmanaged(
            "RequestLog",
            "aiwaf_request_log",
            [
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("request_id", models.TextField()),
                ("ts", models.BigIntegerField()),
                ("ip_address", models.TextField(db_column="ip")),
                ("method", models.TextField()),
                ("path", models.TextField()),
                ("query", models.TextField(default="")),
                ("status_code", models.IntegerField(db_column="status")),
                ("response_time_ms", models.FloatField()),
                ("user_agent", models.TextField(default="")),
                ("referer", models.TextField(default="")),
                ("content_length", models.BigIntegerField(null=True)),
                ("blocked", models.BooleanField(default=False)),
            ],
            ["-ts"],
        ),
    ]
