"""``--threads``: the user's count wins, then OMP_NUM_THREADS, else the cores the load leaves free,
with a line on a busy machine."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
import torch

from safesvd_cli.threads_option import (
    add_threads_option,
    apply_threads,
    available_cores,
    choose_threads,
    free_cores,
)


@pytest.mark.parametrize(
    ("cores", "load", "expected"), [(2, 0.1, 2), (2, 1.2, 1), (2, 4.0, 1), (8, 3.4, 5), (4, 0.0, 4)]
)
def test_free_cores_are_the_cores_minus_the_load_and_never_zero(cores, load, expected):
    assert free_cores(cores, load) == expected


def test_the_users_count_wins_then_the_environment_then_the_free_cores():
    assert choose_threads(3, cores=2, load=5.0, environment="1") == (3, None)
    assert choose_threads(None, cores=2, load=5.0, environment="1") == (1, None)
    assert choose_threads(None, cores=2, load=0.2, environment=None) == (2, None)
    assert choose_threads(None, cores=2, load=None, environment=None) == (2, None)


def test_a_busy_machine_gets_fewer_threads_and_is_said_out_loud():
    threads, message = choose_threads(None, cores=2, load=2.1, environment="")
    assert threads == 1
    assert (
        message
        == "safesvd: the machine is busy (load 2.1 on 2 cores): using 1 thread (pass --threads N to choose)"
    )


@pytest.mark.parametrize("text", ["0", "-1", "two"])
def test_a_bad_thread_count_is_refused_by_the_parser(text, capsys):
    parser = argparse.ArgumentParser()
    add_threads_option(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--threads", text])
    assert "thread" in capsys.readouterr().err


def test_more_threads_than_cores_is_refused_by_the_parser_naming_the_bound(capsys):
    parser = argparse.ArgumentParser()
    add_threads_option(parser)
    cores = available_cores()
    assert parser.parse_args(["--threads", str(cores)]).threads == cores
    for text in (str(cores + 1), "30000", "99999"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--threads", text])
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"{text} threads is more than the {cores} cores this process may use" in error
        assert f"pass --threads {cores} or fewer" in error


@pytest.mark.parametrize("command", ["compress", "demo"])
def test_too_many_threads_stop_the_command_before_any_lock_or_work(command, tmp_path, monkeypatch, capsys):
    from safesvd_core.__main__ import main

    config = tmp_path / "run.toml"
    config.write_text('[model]\nzoo = "ns2d-transformer"\n[data]\ngenerator = "ns2d"\n')
    out = tmp_path / "out"
    argv = [str(config)] if command == "compress" else []
    monkeypatch.chdir(tmp_path)

    def reached(*args, **kwargs):
        raise AssertionError("the run went past the parser")

    monkeypatch.setattr("safesvd_cli.output.OutputFolder.check", reached)
    monkeypatch.setattr(torch, "set_num_threads", reached)  # a regression fails here, not in a segfault
    with pytest.raises(SystemExit) as stop:
        main([command, *argv, "--out", str(out), "--threads", "99999"])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "99999 threads is more than" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]  # no lock, no folder


def test_an_environment_asking_more_threads_than_cores_is_lowered_and_said():
    threads, message = choose_threads(None, cores=2, load=0.0, environment="30000")
    assert threads == 2
    assert message == (
        "safesvd: OMP_NUM_THREADS=30000 is more than the 2 cores this process may use: using 2 "
        "(set it to 2 or fewer)"
    )


def test_apply_sets_torchs_thread_count(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr("os.getloadavg", lambda: (50.0, 50.0, 50.0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        assert apply_threads(argparse.Namespace(threads=None)) == 1
        assert torch.get_num_threads() == 1
        assert apply_threads(argparse.Namespace(threads=2)) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_long_commands_take_threads():
    for command in ("compress", "demo"):
        shown = subprocess.run(
            [sys.executable, "-m", "safesvd_core", command, "--help"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "--threads N" in shown, command


def test_on_a_busy_machine_a_user_mistake_still_prints_one_line_alone(tmp_path, monkeypatch, capsys):
    from safesvd_core.__main__ import main

    monkeypatch.setattr("os.getloadavg", lambda: (50.0, 50.0, 50.0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    config = tmp_path / "run.toml"
    config.write_text('[model]\nzoo = "ns2d-transformer"\n[data]\ngenerator = 1\n')
    try:
        assert main(["compress", str(config), "--out", str(tmp_path / "out")]) != 0
    finally:
        torch.set_num_threads(before)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "[data] generator" in lines[0], lines
