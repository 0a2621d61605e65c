"""Bad input on the command line: every mistake is one line on stderr, a non-zero exit, and nothing written.

Each CLI case runs as its own process (faultkit.cli). A full disk and an unwritable folder are simulated
in-process (see the notes on each test): the tests run as root here, and root ignores permission bits.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from core.images import read_metadata
from faultkit import TUI, assert_refused, cli, make_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def generate(checkpoint: Path, out: Path, *extra: str) -> list[str]:
    """A valid command (tiny model, 2 items, 2 steps); the extra flags come last, so they win."""
    return ["generate", "--checkpoint", str(checkpoint), "--class", "boot", "--n", "2", "--steps", "2", "--out", str(out),
            *extra]


GENERATE_MISTAKES = [
    (["--class", "shoe"], "unknown class 'shoe'"),
    (["--class", "boot,boot:2"], "given twice"),
    (["--class", "boot:-1"], "negative"),
    (["--class", "boot:0,bag:0"], "sum to zero"),
    (["--class", "boot:nan"], "not a finite number"),
    (["--class", "boot:inf,bag:1"], "not a finite number"),
    (["--class", "boot:1e300"], "too large"),
    (["--class", "boot:lots"], "not a number"),
    (["--class", " "], "empty class spec"),
    (["--guidance", "nan"], "guidance must be between 0 and 20"),
    (["--guidance", "inf"], "guidance must be between 0 and 20"),
    (["--guidance", "-0.5"], "guidance must be between 0 and 20"),
    (["--guidance", "1e9"], "guidance must be between 0 and 20"),
    (["--guidance", "strong"], "invalid float value: 'strong'"),
    (["--guidance-interval", "600:0"], "guidance interval must satisfy 0 <= lo <= hi <= 999"),
    (["--guidance-interval", "0:1000"], "guidance interval must satisfy 0 <= lo <= hi <= 999"),
    (["--guidance-interval", "late"], "guidance interval must be lo:hi"),
    (["--autoguidance", "-1"], "autoguidance must be between 0 and 10"),
    (["--autoguidance", "nan"], "autoguidance must be between 0 and 10"),
    (["--autoguidance", "0.5"], "autoguidance needs a guide model"),  # the tiny model has no guide beside it
    (["--guide", "/nonexistent/guide.pt"], "guide.pt does not exist"),
    (["--black-level", "33"], "black level must be a whole number 0-32"),
    (["--black-level", "-1"], "black level must be a whole number 0-32"),
    (["--steps", "1"], "steps must be 2-1000"),
    (["--steps", "100000"], "steps must be 2-1000"),
    (["--steps", "-4"], "steps must be 2-1000"),
    (["--n", "0"], "number of items must be 1-64"),
    (["--n", "65"], "number of items must be 1-64"),
    (["--n", "-3"], "number of items must be 1-64"),
    (["--n", "many"], "invalid int value: 'many'"),
    (["--seed", "abc"], "invalid int value: 'abc'"),
    (["--seed", "1.5"], "invalid int value: '1.5'"),
    (["--seed", "-1"], "seed must be a whole number"),
    (["--seed", "99999999999999999999"], "seed must be a whole number"),
    (["--scale", "0"], "--scale must be 1-64"),
    (["--scale", "1000"], "--scale must be 1-64"),
    (["--columns", "0"], "--columns must be at least 1"),
    (["--palette", "neon"], "unknown palette 'neon'"),
    (["--sampler", "euler"], "invalid choice: 'euler'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
]


@pytest.mark.parametrize("extra, fragment", GENERATE_MISTAKES, ids=[" ".join(e) for e, _ in GENERATE_MISTAKES])
def test_generate_mistakes(checkpoint, tmp_path, extra, fragment):
    out = tmp_path / "out"
    result = cli(TUI, *generate(checkpoint, out, *extra), cwd=tmp_path)
    assert_refused(result, fragment)
    assert result.stdout == ""
    assert not out.exists()


def test_missing_class_flag(checkpoint, tmp_path):
    assert_refused(cli(TUI, "generate", "--checkpoint", checkpoint, cwd=tmp_path), "required: --class")


def test_export_directory_that_is_a_file_or_below_a_file(checkpoint, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_refused(cli(TUI, *generate(checkpoint, blocker), cwd=tmp_path), str(blocker), "it is a file, not a directory")
    below = blocker / "out"
    assert_refused(cli(TUI, *generate(checkpoint, below), cwd=tmp_path), "cannot create export directory", str(below))
    assert blocker.read_text() == "not a folder"


def test_export_directory_without_write_permission(checkpoint, tmp_path):
    """Real permissions; skipped where they do not bind (root), see the in-process test below."""
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(0o500)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as root: permission bits do not stop writes (test_export_directory_refusing_writes covers it)")
        result = cli(TUI, *generate(checkpoint, out), cwd=tmp_path)
        assert_refused(result, "cannot write into", str(out), "Permission denied")
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o700)


def test_export_directory_refusing_writes(checkpoint, tmp_path, monkeypatch, capsys):
    """As root, chmod 0o500 does not stop writes, so the folder's refusal is simulated: creating files in it
    fails with EACCES (the write probe and save_png's temp file both go through these calls)."""
    from pathlib import Path as RealPath

    import tui.cli

    out = tmp_path / "locked"
    out.mkdir()
    real_write_bytes, real_open = RealPath.write_bytes, open

    def refuse(path):
        if RealPath(path).parent == out:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(RealPath, "write_bytes", lambda self, data: refuse(self) or real_write_bytes(self, data))
    monkeypatch.setattr("core.images.open", lambda path, *a, **k: refuse(path) or real_open(path, *a, **k), raising=False)
    assert tui.cli.main(generate(checkpoint, out)) == 1
    captured = capsys.readouterr()
    assert captured.err == f"fashion-tui: error: cannot write into {out}: Permission denied\n"
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_while_exporting(checkpoint, tmp_path, monkeypatch, capsys, where):
    """The disk fills up at the second PNG: simulated in-process, either half-way through writing it (the
    write raises ENOSPC after storing part of the bytes) or when it is flushed to disk (fsync raises)."""
    import types

    import core.files
    import tui.cli

    out = tmp_path / "out"
    targets = []  # the files the atomic writer was asked for, in order
    real_mkstemp, real_fdopen, real_fsync = core.files.tempfile.mkstemp, os.fdopen, os.fsync

    class FillsUp:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(bytes(data)[: len(data) // 2])  # part of it reaches the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def mkstemp(prefix, suffix, dir):
        targets.append(prefix[1:-1])  # the writer's temp files are .NAME.XXXX.tmp beside NAME
        return real_mkstemp(prefix=prefix, suffix=suffix, dir=dir)

    def fdopen(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        return FillsUp(handle) if where == "write" and len(targets) == 2 else handle

    def fsync(fd):
        if len(targets) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(core.files, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))
    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setattr(os, "fsync", fsync)
    # fp32 asked for: "auto" may write its measured verdict first (core.autotune), one more file
    assert tui.cli.main(generate(checkpoint, out, "--n", "3", "--precision", "fp32")) == 1
    captured = capsys.readouterr()
    second = targets[1]
    assert captured.err == f"fashion-tui: error: cannot write {out / second}: No space left on device\n"
    monkeypatch.undo()
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")], names  # no temp file left
    assert second not in names  # no partial PNG under the real name
    assert len(names) == 1 and read_metadata(out / names[0])["index"] == 0  # the first item is whole and readable


EVALUATE_MISTAKES = [
    (["--n-per-class", "1"], "--n-per-class must be at least 2"),
    (["--n-per-class", "ten"], "invalid int value: 'ten'"),
    # the floor could only draw 6,000 real images per class, while the JSON would record more
    (["--n-per-class", "6001"], "--n-per-class must be at most 6000: the floor"),
    # refused before the data (missing here) is even looked at: not after minutes of work
    (["--guidance", "50"], "guidance must be between 0 and 20"),
    (["--steps", "1"], "steps must be 2-1000"),
    (["--seed", "-2"], "seed must be a whole number"),
    # item seeds run to seed + 9*10^6 + 1: refused up front, not after sampling the first class
    (["--seed", "2138483647"], "seed must be at most 2138483646 for 2 items per class"),
    (["--guidance-interval", "0-600"], "guidance interval must be lo:hi"),
    (["--sampler", "plms"], "invalid choice: 'plms'"),
    (["--batch", "0"], "--batch must be 1-1000, not 0"),
    (["--batch", "1001"], "--batch must be 1-1000, not 1001"),
]


@pytest.mark.parametrize("extra, fragment", EVALUATE_MISTAKES, ids=[" ".join(e) for e, _ in EVALUATE_MISTAKES])
def test_evaluate_mistakes(checkpoint, tmp_path, extra, fragment):
    result = cli(TUI, "evaluate", "--checkpoint", checkpoint, "--data-dir", tmp_path / "no-data", "--n-per-class", "2",
                 *extra, cwd=tmp_path)
    assert_refused(result, fragment)


def test_evaluate_unusable_json_out_is_refused_before_any_work(checkpoint, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for target, fragment in ((blocker / "result.json", "is not an existing directory"), (tmp_path, "it is a directory")):
        result = cli(TUI, "evaluate", "--checkpoint", checkpoint, "--data-dir", tmp_path / "no-data", "--n-per-class", "2",
                     "--json-out", target, cwd=tmp_path)
        assert_refused(result, f"cannot write {target}", fragment)


def test_evaluate_full_disk_at_the_end_is_one_line(checkpoint, fake_data_dir, tmp_path, monkeypatch, capsys):
    """The result JSON is written last; a full disk there (simulated: fsync raises ENOSPC) is one line, not a traceback."""
    import tui.cli

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "results" / "result.json"
    target.parent.mkdir()
    code = tui.cli.main(["evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(fake_data_dir), "--n-per-class", "2",
                         "--steps", "2", "--json-out", str(target)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err == f"fashion-tui: error: cannot write {target}: No space left on device (the table above is the result)\n"
    assert "conditional accuracy" in captured.out
    assert list(target.parent.iterdir()) == []  # no result.json, no temp file


def test_info_on_files_that_are_no_recipe(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    result = cli(TUI, "info", junk, text, tmp_path, tmp_path / "missing.png", cwd=tmp_path)
    assert result.rc == 1 and "Traceback" not in result.stderr and result.stdout == ""
    assert result.error_lines == [
        f"fashion-tui: error: {junk} carries no fashion-tui recipe",
        f"fashion-tui: error: {text} is not a readable image (not a PNG file)",
        f"fashion-tui: error: {tmp_path} is a directory, not a PNG",
        f"fashion-tui: error: {tmp_path / 'missing.png'} does not exist",
    ]


@pytest.mark.parametrize("extra, fragment", [
    (["--train-epochs", "0"], "--train-epochs must be at least 1, not 0"),
    (["--train-preset", "huge"], "invalid choice: 'huge'"),
])
def test_app_training_flag_mistakes(tmp_path, extra, fragment):
    result = cli(TUI, *extra, cwd=tmp_path)  # refused before the app starts: nothing to drive, nothing written
    assert_refused(result, fragment)
    assert result.rc == 2 and not list(tmp_path.iterdir())


def test_app_training_flags_reach_the_monitor():
    from core.model.config import DEFAULT_PRESET
    from tui.app import AppOptions
    from tui.cli import build_parser

    options = AppOptions.from_args(build_parser().parse_args(["--train-preset", "fast", "--train-epochs", "3"]))
    assert options.train_preset == "fast" and options.train_overrides == {"epochs": 3}
    defaults = AppOptions.from_args(build_parser().parse_args([]))
    assert defaults.train_preset == DEFAULT_PRESET == "wide-snr" and defaults.train_overrides == {"epochs": 10}
    assert defaults.tensorboard is None
    assert AppOptions.from_args(build_parser().parse_args(["--tensorboard"])).tensorboard == ""  # tb/ in each run
    assert AppOptions.from_args(build_parser().parse_args(["--tensorboard", "logs"])).tensorboard == "logs"


def test_app_tensorboard_without_the_package_is_refused_before_the_app_starts(monkeypatch, capsys):
    from core.training.tensorboard import EXTRA
    from tui.cli import main

    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError, as when it is not installed
    assert main(["--tensorboard"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fashion-tui: error: --tensorboard needs") and EXTRA in err and err.count("\n") == 1
