# examples/plugins/hello.py
"""A `safesvd hello` subcommand: its class and the hook that returns it."""

import argparse
import sys
from typing import ClassVar

from safesvd_core.plugin import CliCommand, hookimpl, plugin_manager, registry


class Hello(CliCommand):
    name: ClassVar[str] = "hello"
    help: ClassVar[str] = "say hello"

    def run(self, args) -> int:
        print("hello")
        return 0


@hookimpl
def safesvd_cli_commands():
    return [Hello]


plugin_manager().register(sys.modules[__name__])   # a plugin package declares an entry point instead
sys.exit(registry("cli_command").create("hello").run(argparse.Namespace()))
