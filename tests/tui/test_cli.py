"""`fashion-tui generate` on the tiny checkpoint: --mix and --show, and what the PNG recipe keeps."""

from __future__ import annotations

import re

from core.images import read_metadata
from tui import cli


def test_show_prints_the_grid_as_half_blocks_within_the_terminal(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "out"
    code = cli.main(["generate", "--class", "sneaker:0.5,boot:0.5", "--n", "5", "--steps", "3", "--mix", "norm",
                     "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--show"])
    assert code == 0
    printed = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out).splitlines()
    blocks = [line for line in printed if "▄" in line]
    assert len(blocks) == (3 * 30 + 2) // 2  # 5 items, 2 to a row at 80 columns: 3 rows of 30px, halved
    assert all(len(line) == 2 * 30 + 2 for line in blocks)  # 2 items of 28px plus padding, well inside 80
    assert printed[-1].startswith("wrote 5 items")
    recipe = read_metadata(next(out.glob("grid_*.png")))
    assert recipe["mix"] == "norm" and recipe["checkpoint"] == "tiny.pt" and str(tmp_path) not in str(recipe)


def test_without_show_nothing_but_the_summary_is_printed(tiny_checkpoint, tmp_path, capsys):
    code = cli.main(["generate", "--class", "boot", "--n", "2", "--steps", "2", "--checkpoint", str(tiny_checkpoint),
                     "--out", str(tmp_path / "out")])
    assert code == 0 and capsys.readouterr().out.count("\n") == 1


def test_generate_draws_with_the_student_unless_a_sampler_is_named_or_it_cannot(student_checkpoint, tmp_path, capsys):
    """No --sampler: the student beside the model where it can draw what is asked; --sampler dpm, or
    what the student refuses (a norm mix here), keeps the teacher."""
    drawn = {}
    for name, extra in (("plain", []), ("named", ["--sampler", "dpm"]), ("norm", ["--mix", "norm"]),
                        ("one", ["--steps", "1"])):
        out = tmp_path / name
        assert cli.main(["generate", "--class", "boot", "--n", "2", "--checkpoint", str(student_checkpoint),
                         "--precision", "fp32", "--out", str(out), *extra]) == 0
        recipe = read_metadata(next(out.glob("grid_*.png")))
        drawn[name] = (recipe["sampler"], recipe["steps"], recipe.get("student"))
        assert f"({recipe['sampler']} {recipe['steps']} steps, fp32)" in capsys.readouterr().out
    assert drawn == {"plain": ("student", 2, "test-model-student.pt"), "named": ("dpm", 20, None),
                     "norm": ("dpm", 20, None), "one": ("student", 1, "test-model-student.pt")}
