import sys

from django.conf import settings

from aiwaf.management.commands._base import CliCommand


class Command(CliCommand):
    help = (
        "Check the project's dependencies (requirements*.txt, pyproject.toml) against this "
        "interpreter's installed packages, the package index, known vulnerabilities and "
        "incompatibilities; plan (and run) the upgrades every constraint allows."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["table", "json"], default="table")
        parser.add_argument("--check-security", action="store_true")
        parser.add_argument("--check-compatibility", action="store_true", help="always on (the seed's flag, kept)")
        parser.add_argument("--upgrade", action="store_true")
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--update-requirements", action="store_true")
        parser.add_argument("--index-url", help="base of the package index's JSON API")
        parser.add_argument("--pre", action="store_true", help="allow pre-releases")

    def handle(self, *args, **o):
        project = str(getattr(settings, "BASE_DIR", None) or ".")
        argv = ["check-deps", project, "--python", sys.executable, "--format", o["format"]]
        for flag in ("check_security", "upgrade", "dry_run", "update_requirements", "pre"):
            if o[flag]:
                argv.append("--" + flag.replace("_", "-"))
        if o["index_url"]:
            argv += ["--index-url", o["index_url"]]
        self.run_cli(argv)
