from aiwaf.management.commands._base import CliCommand


class Command(CliCommand):
    help = "The request log: --status (default), --enable, --disable, --clear."

    def add_arguments(self, parser):
        g = parser.add_mutually_exclusive_group()
        g.add_argument("--enable", action="store_true")
        g.add_argument("--disable", action="store_true")
        g.add_argument("--status", action="store_true")
        g.add_argument("--clear", action="store_true")

    def handle(self, *args, **o):
        action = next((a for a in ("enable", "disable", "clear") if o[a]), "status")
        self.run_cli(["logging", action])
