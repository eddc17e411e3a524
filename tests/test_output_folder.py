"""``--out`` as a whole (safesvd_cli.output): checked before compute, locked, written to a temporary
sibling and moved into place; nothing of the user's replaced without --overwrite, nothing half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from safesvd_cli.output import OutputFolder, foreign_files
from safesvd_core import ConfigError


def fill(files):
    def write(folder):
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        return sorted(files)

    return write


def test_a_new_folder_is_written_whole_and_the_lock_removed(tmp_path):
    out = OutputFolder(tmp_path / "out")
    with out.locked():
        assert out.lock.is_file()
        assert out.write(fill({"model.safetensors": "m", "figures/ranks.png": "p"})) == [
            "figures/ranks.png",
            "model.safetensors",
        ]
    assert (tmp_path / "out" / "figures" / "ranks.png").read_text() == "p"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock, no temporary sibling left


def test_a_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("mine")
    with pytest.raises(ConfigError, match="--out .*out is a file"):
        OutputFolder(tmp_path / "out").check()


def test_the_users_own_files_are_named_and_kept_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "figures" / "ranks.png").write_text("an earlier figure")
    assert foreign_files(out) == ["notes.txt"]
    with (
        pytest.raises(ConfigError, match="holds files safesvd did not write \\(notes.txt\\).*--overwrite"),
        OutputFolder(out).locked(),
    ):
        pass
    assert (out / "notes.txt").read_text() == "mine" and not (tmp_path / ".out.lock").exists()
    with OutputFolder(out, overwrite=True).locked() as target:
        target.write(fill({"model.safetensors": "new"}))
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]


#: The first line of a safesvd manifest: what marks a folder as an earlier output.
MANIFEST = '{"format": "safesvd.manifest/1"}'


def test_an_earlier_output_is_replaced_whole_only_with_overwrite(tmp_path):
    out = tmp_path / "out"
    with OutputFolder(out).locked() as target:  # a one-ratio run
        target.write(fill({"model.safetensors": "old", "manifest.json": MANIFEST, "config.json": "{}"}))
    with pytest.raises(ConfigError, match="holds an earlier output; pass --overwrite"):
        OutputFolder(out).check()
    with OutputFolder(
        out, overwrite=True
    ).locked() as target:  # a two-ratio run: no stale top-level model left
        target.write(
            fill(
                {"ratio-0.6/model.safetensors": "a", "ratio-0.4/model.safetensors": "b", "config.json": "{}"}
            )
        )
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "ratio-0.4", "ratio-0.6"]


@pytest.mark.parametrize("failure", [RuntimeError("the second ratio failed"), KeyboardInterrupt()])
def test_a_failure_while_writing_changes_nothing(tmp_path, failure):
    out = tmp_path / "out"
    with OutputFolder(out).locked() as target:
        target.write(fill({"model.safetensors": "old"}))

    def broken(folder):
        (folder / "model.safetensors").write_text("half")
        raise failure

    with pytest.raises(type(failure)), OutputFolder(out, overwrite=True).locked() as target:
        target.write(broken)
    assert (out / "model.safetensors").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    with (
        OutputFolder(tmp_path / "out").locked(),
        pytest.raises(ConfigError, match="safesvd run \\d+ on .* is writing .*wait for it to end"),
        OutputFolder(tmp_path / "out").locked(),
    ):
        pass
    with OutputFolder(tmp_path / "out").locked():  # released: the next run goes ahead
        pass


def test_compress_refuses_a_folder_with_the_users_files_before_any_compute(tmp_path, monkeypatch):
    from safesvd_cli import pipeline
    from safesvd_core.__main__ import main

    (tmp_path / "c.toml").write_text(
        '[model]\nzoo = "ns2d-transformer"\n\n[data]\ngenerator = "navier_stokes"\n'
        "options = { samples = 8 }\n"
    )
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "config.json").write_text("my own config")
    monkeypatch.setattr(
        pipeline, "prepare", lambda *a, **k: pytest.fail("compute started before --out was checked")
    )
    assert main(["compress", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o")]) == 2
    assert (tmp_path / "o" / "config.json").read_text() == "my own config"


def _hold(out: OutputFolder) -> None:
    with out.locked():
        pytest.fail("the run went on past the refusal")


def test_a_symbolic_link_to_an_earlier_output_is_refused_and_both_kept(tmp_path):
    earlier = OutputFolder(tmp_path / "earlier")
    with earlier.locked():
        earlier.write(fill({"model.safetensors": "old"}))
    (tmp_path / "link").symlink_to(tmp_path / "earlier")
    with pytest.raises(ConfigError, match="--out .*link is a symbolic link .*give the folder it points to"):
        _hold(OutputFolder(tmp_path / "link", overwrite=True))
    assert (tmp_path / "link").is_symlink() and (
        tmp_path / "earlier" / "model.safetensors"
    ).read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier", "link"]


@pytest.mark.parametrize("out", [".", ".."])
def test_the_current_folder_or_one_holding_it_is_refused(tmp_path, monkeypatch, out):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(ConfigError, match=f"--out {out} is \\(or holds\\) the current folder"):
        _hold(OutputFolder(Path(out), overwrite=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_parent_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "locked").mkdir(mode=0o500)
    try:
        with pytest.raises(ConfigError, match="cannot write in .*locked \\(permission denied\\)"):
            _hold(OutputFolder(tmp_path / "locked" / "out"))
    finally:
        (tmp_path / "locked").chmod(0o700)


def test_a_permission_error_on_the_lock_is_one_line(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".out.lock"))

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(ConfigError, match="--out .*out: cannot write in .*choose a folder you can write to"):
        _hold(OutputFolder(tmp_path / "out"))


# --- Data lost or half-written (issue 28): a killed run, a file added during a run, two runs racing.

#: A run of ``OutputFolder`` in its own process, killed (SIGKILL) at a hook point: ``fill`` (while the
#: folder is written) or ``swap`` (the earlier output moved aside, the new one not yet in place).
KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from safesvd_cli.output import OutputFolder

out, where = OutputFolder(Path(sys.argv[1]), overwrite=True), sys.argv[2]
rename = Path.rename

def killed_mid_swap(self, target):
    moved = rename(self, target)
    if ".replaced-" in str(target):
        os.kill(os.getpid(), signal.SIGKILL)
    return moved

def fill(folder):
    (folder / "model.safetensors").write_bytes(b"new" * 400_000)
    if where == "fill":
        os.kill(os.getpid(), signal.SIGKILL)

if where == "swap":
    Path.rename = killed_mid_swap
with out.locked():
    out.write(fill)
"""


def _killed_run(out: Path, where: str) -> int:
    """Run ``KILLED_RUN`` on ``out``; the pid of the killed process."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(out), where], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == -9, done.stderr
    (partial,) = out.parent.glob(f".{out.name}.partial-*")
    return int(partial.name.rsplit("-", 1)[1])


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_killed_while_writing_leaves_nothing_a_later_run_does_not_clean(tmp_path, capsys):
    out = tmp_path / "out"
    pid = _killed_run(out, "fill")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", f".out.partial-{pid}"]
    with OutputFolder(out).locked() as target:  # no "delete the lock file": the run is gone
        target.write(fill({"model.safetensors": "m"}))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert f"took over the lock {tmp_path / '.out.lock'} of run {pid} on " in lines[0]
    assert "no longer running" in lines[0]
    assert f"removed .out.partial-{pid} (1.2 MB), left by a run that was stopped" in lines[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "model.safetensors").read_text() == "m"


def test_a_run_killed_mid_swap_leaves_the_earlier_output_restored(tmp_path, capsys):
    out = tmp_path / "out"
    with OutputFolder(out).locked() as target:
        target.write(fill({"model.safetensors": "old", "manifest.json": MANIFEST}))
    pid = _killed_run(out, "swap")
    assert not out.exists()  # the earlier output aside, the new one not yet in place
    with pytest.raises(ConfigError, match="holds an earlier output"), OutputFolder(out).locked():
        pass
    err = capsys.readouterr().err
    assert f"restored {out} from .out.replaced-{pid}" in err and f"removed .out.partial-{pid}" in err
    assert (out / "model.safetensors").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_hand_made_stale_lock_of_a_dead_pid_is_taken_over_with_a_line(tmp_path, capsys):
    import socket

    pid = _dead_pid()
    (tmp_path / ".out.lock").write_text(str(pid))  # the format of older safesvd: the pid alone
    (tmp_path / f".out.partial-{pid}").mkdir()
    (tmp_path / f".out.partial-{pid}" / "model.safetensors").write_bytes(b"x" * 5000)
    with OutputFolder(tmp_path / "out").locked() as target:
        record = json.loads(target.lock.read_text())  # who holds it: pid and host
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        target.write(fill({"model.safetensors": "m"}))
    err = capsys.readouterr().err
    assert f"of run {pid} on this host (no longer running)" in err
    assert f"removed .out.partial-{pid} (5.0 kB)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_lock_held_by_a_live_run_is_refused_naming_its_pid_and_host(tmp_path):
    import socket
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from safesvd_cli.output import OutputFolder\n"
            "with OutputFolder(Path(sys.argv[1])).locked():\n print('held', flush=True); sys.stdin.read()",
            str(tmp_path / "out"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(ConfigError, match=f"run {holder.pid} on {socket.gethostname()} is writing"),
            OutputFolder(tmp_path / "out").locked(),
        ):
            pass
    finally:
        holder.communicate("", timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_lock_of_another_host_is_refused_naming_it(tmp_path):
    (tmp_path / ".out.lock").write_text('{"pid": 4242, "host": "elsewhere"}')
    with (
        pytest.raises(
            ConfigError, match="run 4242 on elsewhere is writing .*cannot check a process on elsewhere"
        ),
        OutputFolder(tmp_path / "out").locked(),
    ):
        pass
    assert (tmp_path / ".out.lock").read_text() == '{"pid": 4242, "host": "elsewhere"}'


def test_a_lock_whose_run_ended_is_taken_over_even_if_its_pid_was_reused(tmp_path, capsys):
    """A lock this version wrote, with no process holding it: its run is gone, whatever has its pid now
    (in a container the next run often gets the same pid)."""
    import socket

    record = {"pid": os.getppid(), "host": socket.gethostname()}
    (tmp_path / ".out.lock").write_text(json.dumps(record))
    with OutputFolder(tmp_path / "out").locked():
        pass
    assert f"pid {os.getppid()} is now another process" in capsys.readouterr().err


def test_an_old_format_lock_of_a_live_pid_is_refused(tmp_path):
    (tmp_path / ".out.lock").write_text(str(os.getppid()))  # a live process, maybe an older safesvd
    with (
        pytest.raises(ConfigError, match="is writing .*delete the lock"),
        OutputFolder(tmp_path / "out").locked(),
    ):
        pass
    assert (tmp_path / ".out.lock").read_text() == str(os.getppid())


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_file_added_to_out_during_the_run_is_kept_and_the_new_output_too(tmp_path, overwrite):
    out = tmp_path / "out"
    if overwrite:
        with OutputFolder(out).locked() as target:
            target.write(fill({"model.safetensors": "old"}))

    def user_adds_a_file(folder):
        out.mkdir(exist_ok=True)
        (out / "notes.txt").write_text("mine")  # the user, while the run computes
        return fill({"model.safetensors": "new"})(folder)

    with (
        pytest.raises(
            ConfigError, match="out changed during the run \\(added: notes.txt\\).*kept in .*out.new"
        ),
        OutputFolder(out, overwrite=overwrite).locked() as target,
    ):
        target.write(user_adds_a_file)
    assert (out / "notes.txt").read_text() == "mine"
    assert (tmp_path / "out.new" / "model.safetensors").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.new"]


def test_an_earlier_output_changed_during_the_run_is_not_replaced(tmp_path):
    out = tmp_path / "out"
    with OutputFolder(out).locked() as target:
        target.write(fill({"model.safetensors": "old", "manifest.json": MANIFEST}))
    (tmp_path / "out.new").mkdir()  # taken: the next free name is used

    def user_edits(folder):
        (out / "manifest.json").write_text('{"edited": true}')
        return fill({"model.safetensors": "new"})(folder)

    with (
        pytest.raises(ConfigError, match="changed: manifest.json.*kept in .*out.new-2"),
        OutputFolder(out, overwrite=True).locked() as target,
    ):
        target.write(user_edits)
    assert (out / "manifest.json").read_text() == '{"edited": true}'
    assert (tmp_path / "out.new-2" / "model.safetensors").read_text() == "new"


def test_two_runs_racing_for_one_folder_never_both_write(tmp_path, monkeypatch):
    """Run A goes through whole in the pause after run B's check (25 s in the probe): B must not
    silently replace A's output."""
    out, outcomes = tmp_path / "out", {}
    check = OutputFolder.check

    def run(name):
        try:
            with OutputFolder(out).locked() as target:
                target.write(fill({"model.safetensors": name}))
            outcomes[name] = "written"
        except ConfigError as error:
            outcomes[name] = str(error)

    def check_then_pause(self):
        check(self)
        if not outcomes:  # B's check: A runs whole in the pause
            outcomes["paused"] = True
            run("A")

    monkeypatch.setattr(OutputFolder, "check", check_then_pause)
    run("B")
    written = [name for name in "AB" if outcomes[name] == "written"]
    assert len(written) == 1, outcomes
    refused = outcomes["A" if written == ["B"] else "B"]
    assert "is writing" in refused or "holds an earlier output" in refused, refused
    assert (out / "model.safetensors").read_text() == written[0]


# --- The same three through `safesvd compress` (a small zoo run: a few seconds each).

CLI_CONFIG = (
    '[model]\nzoo = "ns2d-transformer"\n\n[data]\ngenerator = "navier_stokes"\n'
    "options = { samples = 8 }\n\n[evaluate]\nfigures = false\n"
)
#: ``safesvd compress`` killed (SIGKILL) once the model folder is in the partial folder.
KILLED_COMPRESS = """
import os, signal, sys
from safesvd_cli import folder
from safesvd_core.__main__ import main

write_model = folder.write_model

def killed(*args, **kwargs):
    write_model(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

folder.write_model = killed
main(sys.argv[1:])
"""


def test_compress_after_a_killed_compress_takes_the_lock_over_and_cleans_up(tmp_path):
    import subprocess
    import sys

    (tmp_path / "c.toml").write_text(CLI_CONFIG)
    argv = ["compress", "c.toml", "--out", "o", "--threads", "1"]
    run = {"cwd": tmp_path, "capture_output": True, "text": True, "timeout": 600}
    killed = subprocess.run([sys.executable, "-c", KILLED_COMPRESS, *argv], **run)
    assert killed.returncode == -9, killed.stderr
    (partial,) = tmp_path.glob(".o.partial-*")
    assert (tmp_path / ".o.lock").is_file() and (partial / "model.safetensors").is_file()
    again = subprocess.run([sys.executable, "-m", "safesvd_core", *argv], **run)
    assert again.returncode == 0, again.stderr
    assert f"took over the lock .o.lock of run {partial.name.rsplit('-', 1)[1]} on this host" in again.stderr
    assert f"removed {partial.name} (" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "o"]
    assert (tmp_path / "o" / "model.safetensors").is_file()


def test_compress_keeps_a_file_added_to_out_during_the_run(tmp_path, monkeypatch, capsys):
    from safesvd_cli import pipeline
    from safesvd_core.__main__ import main

    (tmp_path / "c.toml").write_text(CLI_CONFIG)
    out, runs = tmp_path / "o", pipeline.runs

    def user_adds_a_file(*args, **kwargs):
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        return runs(*args, **kwargs)

    monkeypatch.setattr(pipeline, "runs", user_adds_a_file)
    assert main(["compress", str(tmp_path / "c.toml"), "--out", str(out), "--threads", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "changed during the run (added: notes.txt)" in lines[0], lines
    assert f"kept in {tmp_path / 'o.new'}" in lines[0]
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (tmp_path / "o.new" / "model.safetensors").is_file()


def test_two_compress_runs_racing_for_one_folder_never_both_exit_0(tmp_path, monkeypatch, capsys):
    """Run A, whole, in the pause after run B's check (25 s in the probe, where both exited 0)."""
    from safesvd_core.__main__ import main

    (tmp_path / "c.toml").write_text(CLI_CONFIG)
    argv = ["compress", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"), "--threads", "1"]
    check, codes = OutputFolder.check, {}

    def check_then_pause(self):
        check(self)
        if not codes:
            codes["A"] = None
            codes["A"] = main(argv)

    monkeypatch.setattr(OutputFolder, "check", check_then_pause)
    codes["B"] = main(argv)
    assert sorted(codes.values()) == [0, 2], codes
    assert "is writing" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "o"]


@pytest.mark.parametrize(
    "files",
    [
        {"config.json": "{}", "model.safetensors": "mine"},  # a checkpoint folder: safesvd's file names
        {"report.json": "{}", "manifest.json": '{"format": "someone-else"}'},
    ],
)
def test_a_folder_of_the_users_own_files_is_not_called_an_earlier_output(tmp_path, files):
    out = tmp_path / "out"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    with pytest.raises(ConfigError, match="holds no safesvd output .no manifest.json of one."):
        OutputFolder(out).check()
