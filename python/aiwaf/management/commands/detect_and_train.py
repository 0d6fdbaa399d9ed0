from aiwaf.management.commands._base import CliCommand


class Command(CliCommand):
    help = "Learn from access logs (AIWAF_ACCESS_LOG and its rotations, else the request log): ban attackers, train the model, learn keywords."

    def add_arguments(self, parser):
        parser.add_argument("--log", action="append", default=[], help="access log to read (repeatable)")
        parser.add_argument("--since", help="only lines newer than this (e.g. 7d)")
        parser.add_argument("--dry-run", action="store_true", help="report; write nothing")
        parser.add_argument("--json", action="store_true", help="the report as one JSON object")
        parser.add_argument("--explain", metavar="IP", help="why would training ban this address")
        parser.add_argument("--disable-ai", action="store_true", help="accepted for the seed's scripts; the model's guard keeps it from banning alone")

    def handle(self, *args, **o):
        argv = ["train"]
        for log in o["log"]:
            argv += ["--log", log]
        if o["since"]:
            argv += ["--since", o["since"]]
        if o["dry_run"]:
            argv.append("--dry-run")
        if o["json"]:
            argv.append("--json")
        if o["explain"]:
            argv += ["--explain", o["explain"]]
        self.run_cli(argv)
