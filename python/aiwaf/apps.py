from django.apps import AppConfig


class AiwafConfig(AppConfig):
    name = "aiwaf"
    verbose_name = "AI-Driven Web Application Firewall"
    default_auto_field = "django.db.models.AutoField"

    def ready(self):
        # A bad AIWAF_* setting stops start-up here, naming it.
        from aiwaf import conf

        conf.check()
