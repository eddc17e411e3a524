"""``--progress``/``--no-progress``: on by default in a terminal, off in a log or a pipe."""

from __future__ import annotations

import argparse

import pytest

from safesvd_cli.progress_option import add_progress_option, wants_progress


@pytest.mark.parametrize(("argv", "tty", "expected"), [
    ([], True, True), ([], False, False), (["--progress"], False, True), (["--no-progress"], True, False),
])
def test_progress_defaults_to_the_terminal(monkeypatch, argv, tty, expected):
    parser = argparse.ArgumentParser()
    add_progress_option(parser)
    monkeypatch.setattr("sys.stderr.isatty", lambda: tty)
    assert wants_progress(parser.parse_args(argv)) is expected
