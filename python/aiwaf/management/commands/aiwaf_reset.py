from django.core.management.base import CommandError

from aiwaf.management.commands._base import CliCommand


class Command(CliCommand):
    help = "Clear the blacklist, the exemptions and the learned keywords (or one of them)."

    def add_arguments(self, parser):
        parser.add_argument("--blacklist-only", action="store_true")
        parser.add_argument("--exemptions-only", action="store_true")
        parser.add_argument("--keywords-only", action="store_true")
        parser.add_argument("--confirm", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, **o):
        only = [k for k in ("blacklist_only", "exemptions_only", "keywords_only") if o[k]]
        if len(only) > 1:
            raise CommandError("choose at most one of --blacklist-only, --exemptions-only, --keywords-only")
        argv = ["reset"] + ["--" + k.replace("_", "-") for k in only]
        if o["confirm"]:
            argv.append("--yes")
        self.run_cli(argv)
