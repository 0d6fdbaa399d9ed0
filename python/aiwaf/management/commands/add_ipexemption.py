from aiwaf.management.commands._base import CliCommand


class Command(CliCommand):
    help = "Exempt an IP address or CIDR network from every check (lifts its bans)."

    def add_arguments(self, parser):
        parser.add_argument("ip")
        parser.add_argument("--reason", default="")

    def handle(self, *args, **o):
        self.run_cli(["exempt", "add", o["ip"], "--reason", o["reason"]])
