"""``--progress``/``--no-progress``: on by default in a terminal, off in a log or a pipe."""

from __future__ import annotations

import argparse

import pytest

from safesvd_cli.progress_option import add_progress_option, wants_progress


@pytest.mark.parametrize(
    ("argv", "tty", "expected"),
    [
        ([], True, True),
        ([], False, False),
        (["--progress"], False, True),
        (["--no-progress"], True, False),
    ],
)
def test_progress_defaults_to_the_terminal(monkeypatch, argv, tty, expected):
    parser = argparse.ArgumentParser()
    add_progress_option(parser)
    monkeypatch.setattr("sys.stderr.isatty", lambda: tty)
    assert wants_progress(parser.parse_args(argv)) is expected


def test_compress_with_progress_names_the_recipe_the_ratio_and_every_phase(capsys):
    from safesvd_core import compress

    from test_compress import small_data, small_transformer

    result = compress(small_transformer(), small_data(), ratio=0.5, progress=True)
    err = capsys.readouterr().err
    phases = [phase for phase in result.timings if phase != "total"]
    for phase in phases:
        assert f"[safe-svd, ratio 0.5] {phase} …" in err
        assert f"[safe-svd, ratio 0.5] {phase} done in " in err
    assert len(phases) >= 3


def test_compress_without_progress_is_silent(capsys):
    from safesvd_core import compress

    from test_compress import small_data, small_transformer

    compress(small_transformer(), small_data(), ratio=0.5)
    assert "ratio 0.5" not in capsys.readouterr().err


def test_a_run_is_announced_with_the_time_left_from_the_runs_before(capsys):
    from safesvd_cli.progress_option import announce_run, time_left

    announce_run(1, 3, "safe-svd at ratio 0.8", time_left([], 3))
    announce_run(3, 3, "safe-svd at ratio 0.4", time_left([10.0, 20.0], 1))
    first, last = capsys.readouterr().err.splitlines()
    assert first == "run 1/3: safe-svd at ratio 0.8"
    assert last == "run 3/3: safe-svd at ratio 0.4, about 15 s left"
