from aiwaf.management.commands._base import CliCommand


class Command(CliCommand):
    help = "List blocked addresses (default), exempted addresses, learned keywords, or all."

    def add_arguments(self, parser):
        g = parser.add_mutually_exclusive_group()
        g.add_argument("--ips-blocked", action="store_true")
        g.add_argument("--ips-exempted", action="store_true")
        g.add_argument("--keywords-monitored", action="store_true")
        g.add_argument("--all", action="store_true")
        parser.add_argument("--format", choices=["table", "json"], default="table")

    def handle(self, *args, **o):
        json = ["--json"] if o["format"] == "json" else []
        lists = []
        if o["all"] or o["ips_blocked"] or not (o["ips_exempted"] or o["keywords_monitored"]):
            lists.append(["blacklist", "list"])
        if o["all"] or o["ips_exempted"]:
            lists.append(["exempt", "list"])
        if o["all"] or o["keywords_monitored"]:
            lists.append(["keywords", "list"])
        for argv in lists:
            self.run_cli(argv + json)
