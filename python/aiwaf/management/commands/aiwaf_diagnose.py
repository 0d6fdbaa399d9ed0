from django.conf import settings

from aiwaf import conf
from aiwaf.management.commands._base import CliCommand


class Command(CliCommand):
    help = "Check the installation: app, middleware, settings, storage, model."

    def handle(self, *args, **o):
        w = self.stdout.write
        w(f"aiwaf app in INSTALLED_APPS: {'yes' if 'aiwaf' in settings.INSTALLED_APPS or 'aiwaf.apps.AiwafConfig' in settings.INSTALLED_APPS else 'NO'}")
        listed = conf.listed_middleware()
        w(f"aiwaf middleware in MIDDLEWARE: {', '.join(listed) if listed else 'NONE (nothing is inspected)'}")
        off = conf.detectors_off()
        w(f"detectors off (no listed middleware asks for them): {', '.join(off) if off else 'none'}")
        w(f"block response: {conf.block_response()}")
        self.stdout.flush()
        self.run_cli(["diagnose"])
