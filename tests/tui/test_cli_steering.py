"""fashion-tui generate with the steering options, info on what it wrote, and the films."""

from __future__ import annotations

import torch
from PIL import Image

from core.images import pixel_levels, read_metadata, read_source_image, to_uint8
from core.sampling.recipes import request_from_recipe
from core.sampling.request import SampleRequest
from core.sampling.samplers import sample
from tui.cli import main

SNEAKER, BOOT, BAG = ([1.0 if c == k else 0.0 for c in range(10)] for k in (7, 9, 8))


def exported(path) -> torch.Tensor:
    return pixel_levels(Image.open(path).convert("L"))  # (28, 28)


def test_generate_edits_varies_and_switches_and_the_pngs_reproduce_the_pixels(trained, trained_checkpoint, tmp_path, capsys):
    source = tmp_path / "shoe.png"
    photo = Image.new("RGB", (200, 120), (255, 255, 255))
    photo.paste((10, 10, 10), (20, 30, 180, 100))
    photo.save(source)
    out = tmp_path / "out"
    code = main(["generate", "--checkpoint", str(trained_checkpoint), "--class", "boot", "--n", "3", "--steps", "6",
                 "--sampler", "ddim", "--seed", "5", "--precision", "fp32", "--out", str(out), "--init", str(source),
                 "--strength", "0.7", "--variation-seed", "40", "--variation-strength", "0.3", "--switch-to", "bag",
                 "--switch-at", "0.5"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"edited from {source}: 200x120 RGB, negated (a light background), trimmed to 160x70" in printed
    picture, _ = read_source_image(source)
    expected = sample(trained, SampleRequest(BOOT, n=3, sampler="ddim", steps=6, seed=5, precision="fp32", shared_noise=True,
                                             variation_seed=40, variation_strength=0.3, init_image=picture,
                                             init_strength=0.7, switch_to=BAG, switch_at=0.5))
    items = sorted(out.glob("boot_seed5_*.png"))
    assert len(items) == 3
    for index, path in enumerate(items):
        assert torch.equal(exported(path), to_uint8(expected[index, 0]))
        again, found = request_from_recipe(read_metadata(path))  # the PNG alone: its picture is in the recipe
        assert found == index and torch.equal(sample(trained, again), expected)
    assert main(["info", str(items[1])]) == 0
    info = capsys.readouterr().out
    for line in ("variation_seed     40", "variation_strength 0.3", "init_strength      0.7", "switch_to_classes  bag:1",
                 "switch_at          0.5", "init_image         a 28x28 grey picture"):
        assert line in info, line


def test_generate_film_writes_an_animated_png_per_item_with_its_recipe_or_a_gif(trained_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["generate", "--checkpoint", str(trained_checkpoint), "--class", "sneaker", "--n", "2", "--steps", "5",
              "--sampler", "ddim", "--out", str(out)]
    assert main([*common, "--film"]) == 0
    films = sorted(out.glob("film_*.png"))
    assert [f.name for f in films] == ["film_sneaker_seed0_00.png", "film_sneaker_seed0_01.png"]
    with Image.open(films[1]) as film:
        assert film.n_frames == 6 and film.size == (2 * 112 + 3 * 8, 20 + 112 + 8)  # 5 steps and the item, 4x
    assert read_metadata(films[1])["index"] == 1 and "2 films" in capsys.readouterr().out
    assert main([*common, "--film", "gif", "--n", "1"]) == 0
    with Image.open(out / "film_sneaker_seed0_00.gif") as film:
        assert film.n_frames == 6


def test_a_plain_recipe_shows_no_steering_in_info(trained_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "--checkpoint", str(trained_checkpoint), "--class", "bag", "--n", "1", "--steps", "2",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["info", str(next(out.glob("grid_*.png")))]) == 0
    info = capsys.readouterr().out
    assert "variation" not in info and "init" not in info and "switch" not in info
