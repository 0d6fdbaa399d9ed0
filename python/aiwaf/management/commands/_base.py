"""Management commands are the ``aiwaf`` command line, run with the project's settings: one
implementation for both (output is the CLI's own, on this process's standard output)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from aiwaf import conf


class CliCommand(BaseCommand):
    def run_cli(self, args: list[str]) -> None:
        code = conf.run_cli(args)
        if code != 0:
            raise CommandError(f"aiwaf {' '.join(args)} ended with exit code {code}", returncode=code)
