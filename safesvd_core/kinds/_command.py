"""The CLI-command kind: a subcommand of ``safesvd`` that a plugin contributes."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import ClassVar


class CliCommand(ABC):
    """``safesvd <name> ...``: returned by the ``safesvd_cli_commands`` hook.

    ``name`` is the subcommand, ``help`` its one-line description. Instances are built with no
    argument; :meth:`add_arguments` declares the options, :meth:`run` does the work.
    """

    name: ClassVar[str]
    help: ClassVar[str]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 - optional hook
        """Declare this command's options on its sub-parser. Default: none."""

    @abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Run the command; return the process exit status."""
