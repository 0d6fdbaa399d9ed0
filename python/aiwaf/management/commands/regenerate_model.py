from aiwaf.management.commands._base import CliCommand


class Command(CliCommand):
    help = "Retrain the anomaly model from the stored request log."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="accepted for the seed's scripts; the model is always retrained")
        parser.add_argument("--disable-ai", action="store_true", help="accepted for the seed's scripts")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        self.run_cli(["model", "regenerate"] + (["--json"] if o["json"] else []))
