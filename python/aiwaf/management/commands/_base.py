"""Management commands are the ``aiwaf`` command line, run with the project's settings: one
implementation for both. The CLI writes to file descriptor 1; its output is taken from there and
written through the command's own ``stdout`` (so ``call_command(..., stdout=buf)`` captures it)."""

from __future__ import annotations

import os
import sys
import tempfile

from django.core.management.base import BaseCommand, CommandError

from aiwaf import conf


class CliCommand(BaseCommand):
    def run_cli(self, args: list[str]) -> None:
        sys.stdout.flush()
        with tempfile.TemporaryFile() as out:
            saved = os.dup(1)
            try:
                os.dup2(out.fileno(), 1)
                try:
                    code = conf.run_cli(args)
                finally:
                    os.dup2(saved, 1)
            finally:
                os.close(saved)
            out.seek(0)
            text = out.read().decode("utf-8", "replace")
        if text:
            self.stdout.write(text, ending="")
            self.stdout.flush()
        if code != 0:
            raise CommandError(f"aiwaf {' '.join(args)} ended with exit code {code}", returncode=code)
