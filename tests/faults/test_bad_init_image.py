"""Bad pictures to edit from and bad steering values: each is one line on stderr, a non-zero exit, and
nothing written. (The app's O and its steering rows: tests/tui/test_tui_steering.py.)"""

from __future__ import annotations

import builtins
import io
import re
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from core.images import read_source_image
from faultkit import TUI, assert_refused, cli, make_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def generate(checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return ["generate", "--checkpoint", str(checkpoint), "--class", "boot", "--n", "2", "--steps", "2", "--out", str(out),
            *extra]


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand, so it can claim what Pillow would never write."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def photo(size=(120, 90)) -> Image.Image:
    image = Image.effect_noise(size, 60).convert("RGB")
    image.paste((240, 240, 240), (0, 0, size[0], 10))
    return image


def bad_pictures(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a fragment of the one line that refuses it)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}

    def put(name: str, data: bytes, fragment: str, suffix: str = ".png") -> None:
        files[name] = (folder / f"{name}{suffix}", fragment)
        files[name][0].write_bytes(data)

    def saved(image: Image.Image, kind: str, **options) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=kind, **options)
        return buffer.getvalue()

    whole_png, whole_jpeg = saved(photo(), "PNG"), saved(photo(), "JPEG")
    put("truncated-png", whole_png[: len(whole_png) // 2], "cannot be read as a picture")
    put("truncated-jpeg", whole_jpeg[: len(whole_jpeg) // 2], "cannot be read as a picture", ".jpg")
    put("empty", b"", "is not a picture Pillow can read")
    put("text", b"a sneaker, honestly\n" * 20, "is not a picture Pillow can read", ".txt")
    put("random-bytes", bytes(range(256)) * 8, "is not a picture Pillow can read", ".bin")
    put("bomb", png(60_000, 60_000, 1, 0, b"\x00" * 64), "too large a picture")  # 3.6G pixels claimed in 100 bytes
    put("large", saved(Image.new("L", (4200, 4200)), "PNG"), "too large a picture (4200x4200")
    frames = [photo(), photo((120, 90)).rotate(90)]
    put("animated-gif", saved(frames[0], "GIF", save_all=True, append_images=frames[1:]), "is animated (2 frames)", ".gif")
    put("animated-png", saved(frames[0], "PNG", save_all=True, append_images=frames[1:]), "is animated (2 frames)")
    deep = Image.linear_gradient("L").resize((40, 40)).convert("I").point(lambda v: v * 200).convert("I;16")
    put("grey-deep", saved(deep, "PNG"), "16-bit")  # (no name holds a fragment of its refusal)
    put("rgb-deep", png(4, 4, 16, 2, b"".join(b"\x00" + bytes([40 * y, 0]) * 12 for y in range(4))), "16-bit")
    put("blank", saved(Image.new("RGB", (50, 50), (200, 10, 10)), "PNG"), "is blank (one colour)")
    (folder / "directory.png").mkdir()
    files["directory"] = (folder / "directory.png", "is a directory, not a picture")
    files["missing"] = (folder / "missing.png", "does not exist")
    return files


BAD = [
    "truncated-png", "truncated-jpeg", "empty", "text", "random-bytes", "bomb", "large", "animated-gif", "animated-png",
    "grey-deep", "rgb-deep", "blank", "directory", "missing"]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    return bad_pictures(tmp_path_factory.mktemp("pictures"))


@pytest.mark.parametrize("name", BAD)
def test_a_bad_init_picture_is_one_line_and_writes_nothing(checkpoint, pictures, tmp_path, name):
    path, fragment = pictures[name]
    out = tmp_path / "out"
    result = cli(TUI, *generate(checkpoint, out, "--init", str(path), "--strength", "0.5"), cwd=tmp_path)
    assert_refused(result, fragment, str(path))
    assert result.stdout == "" and not out.exists()


@pytest.mark.parametrize("name", BAD)
def test_read_source_image_refuses_it_with_a_value_error(pictures, name):
    path, fragment = pictures[name]
    with pytest.raises(ValueError, match=re.escape(fragment)) as error:
        read_source_image(path)
    assert "\n" not in str(error.value)


def test_an_unreadable_picture_is_one_line(checkpoint, tmp_path, monkeypatch, capsys):
    """Permission bits do not bind root (these tests' user), so the refusal to open is simulated in-process."""
    import tui.cli

    picture = tmp_path / "locked.png"
    photo().save(picture)
    real_open = builtins.open

    def refuse(file, *args, **kwargs):
        if str(file) == str(picture):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refuse)
    out = tmp_path / "out"
    assert tui.cli.main(generate(checkpoint, out, "--init", str(picture))) == 1
    err = capsys.readouterr().err
    assert err == f"fashion-tui: error: {picture} cannot be read as a picture (Permission denied)\n" and not out.exists()


STEERING_MISTAKES = [
    (["--init", "PICTURE", "--strength", "1.5"], "edit strength must be between 0 and 1, not 1.5"),
    (["--init", "PICTURE", "--strength", "-0.1"], "edit strength must be between 0 and 1"),
    (["--init", "PICTURE", "--strength", "nan"], "edit strength must be between 0 and 1"),
    (["--init", "PICTURE", "--strength", "half"], "invalid float value: 'half'"),
    (["--strength", "0.5"], "--strength needs --init"),
    (["--switch-to", "sneaker", "--switch-at", "1.01"], "switch point must be between 0 and 1"),
    (["--switch-to", "sneaker", "--switch-at", "-2"], "switch point must be between 0 and 1"),
    (["--switch-to", "sneaker", "--switch-at", "inf"], "switch point must be between 0 and 1"),
    (["--switch-at", "0.4"], "--switch-at needs --switch-to"),
    (["--switch-to", "shoe"], "unknown class 'shoe'"),
    (["--variation-seed", "3", "--variation-strength", "2"], "variation strength must be between 0 and 1"),
    (["--variation-seed", "3", "--variation-strength", "nan"], "variation strength must be between 0 and 1"),
    (["--variation-seed", "-3"], "variation seed must be a whole number"),
    (["--variation-strength", "0.3"], "--variation-strength needs --variation-seed"),
    (["--film", "mp4"], "invalid choice: 'mp4'"),
]


@pytest.mark.parametrize("extra, fragment", STEERING_MISTAKES, ids=[" ".join(e) for e, _ in STEERING_MISTAKES])
def test_steering_mistakes(checkpoint, tmp_path, extra, fragment):
    picture = tmp_path / "sneaker.png"
    photo().save(picture)
    out = tmp_path / "out"
    result = cli(TUI, *generate(checkpoint, out, *[str(picture) if a == "PICTURE" else a for a in extra]), cwd=tmp_path)
    assert_refused(result, fragment)
    assert result.stdout == "" and not out.exists()
