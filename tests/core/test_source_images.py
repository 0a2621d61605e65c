"""Pictures to edit from (core.images.read_source_image): exported items come back pixel for pixel,
other pictures are made as Fashion-MNIST made its items (grey, light on black, trimmed, area-scaled
to 28 on the longer side, centred)."""

import pytest
import torch
from PIL import Image

from core.images import make_grid, palette_lut, read_source_image, save_png, to_pil
from support import SHARED_DATA, needs_data


def item(seed: int = 0) -> torch.Tensor:
    """A light blob on black with every grey level but viridis's shared one (128): uint8 (28, 28)."""
    generator = torch.Generator().manual_seed(seed)
    levels = torch.cat([torch.arange(0, 128), torch.arange(129, 256)])[torch.randperm(255, generator=generator)]
    pixels = torch.zeros(28, 28, dtype=torch.uint8)
    pixels[6:24, 6:20] = levels.repeat(1)[:252].reshape(18, 14).to(torch.uint8)
    return pixels


@pytest.mark.parametrize("palette", ["grey", "inverted", "magma", "viridis", "ice"])
@pytest.mark.parametrize("scale", [1, 8])
def test_an_exported_item_comes_back_pixel_for_pixel(tmp_path, palette, scale):
    pixels = item()
    path = save_png(to_pil(pixels, palette, scale), tmp_path / "item.png", {"fashion_tui_recipe": 1, "palette": palette,
                                                                             "scale": scale, "index": 0})
    again, how = read_source_image(path)
    assert again == pixels.numpy().tobytes()
    assert (f"{palette} palette undone" in how) == (palette != "grey") and (f"at {scale}x" in how) == (scale > 1)


def test_a_plain_28px_or_blocky_picture_is_taken_as_an_item(tmp_path):
    pixels = item(1)
    Image.fromarray(pixels.numpy(), "L").save(tmp_path / "small.png")
    Image.fromarray(pixels.numpy(), "L").resize((84, 84), Image.NEAREST).convert("RGB").save(tmp_path / "big.png")
    assert read_source_image(tmp_path / "small.png")[0] == pixels.numpy().tobytes()
    assert read_source_image(tmp_path / "big.png")[0] == pixels.numpy().tobytes()


def test_a_dark_item_on_a_light_photo_is_negated_trimmed_scaled_and_centred(tmp_path):
    photo = Image.new("RGB", (400, 300), (245, 245, 240))
    photo.paste((30, 30, 40), (100, 50, 300, 150))  # a dark 200x100 item, off centre
    photo.save(tmp_path / "photo.jpg", quality=95)
    pixels, how = read_source_image(tmp_path / "photo.jpg")
    grey = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(28, 28)
    assert "negated" in how and "trimmed to 200x100" in how and "scaled to 28x14" in how
    rows, columns = (grey > 128).any(dim=1).nonzero(), (grey > 128).any(dim=0).nonzero()
    assert (int(rows[0]), int(rows[-1]), int(columns[0]), int(columns[-1])) == (7, 20, 0, 27)  # centred, aspect kept
    assert int(grey[0, 0]) == 0 and int(grey[14, 14]) > 200  # light on black, the background stretched to black


def test_a_light_item_on_black_is_not_negated_and_transparency_counts_as_white(tmp_path):
    dark = Image.new("L", (100, 60), 0)
    dark.paste(200, (10, 10, 90, 50))
    dark.save(tmp_path / "dark.png")
    pixels, how = read_source_image(tmp_path / "dark.png")
    assert "negated" not in how and max(pixels) > 150
    clear = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
    clear.paste((20, 20, 20, 255), (20, 10, 40, 50))  # a dark shape on a transparent background
    clear.save(tmp_path / "clear.png")
    pixels, how = read_source_image(tmp_path / "clear.png")
    assert "transparency over white" in how and "negated" in how
    assert torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(28, 28)[14, 14] > 200


def test_an_exported_grid_is_refused_with_a_hint(tmp_path):
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    path = save_png(to_pil(make_grid(images, 2)), tmp_path / "grid.png", {"fashion_tui_recipe": 1, "columns": 2})
    with pytest.raises(ValueError, match="is a grid of items: open the PNG of one item"):
        read_source_image(path)


@needs_data
def test_a_real_fashion_mnist_item_comes_back_as_itself(tmp_path):
    from core.data import load_split

    real = load_split("test", SHARED_DATA, limit=20).images
    for index in range(20):
        Image.fromarray(real[index].numpy(), "L").save(tmp_path / f"{index}.png")
        assert read_source_image(tmp_path / f"{index}.png")[0] == real[index].numpy().tobytes()


def test_every_palette_colour_maps_back_to_its_level():
    """So an export's palette can be undone: each of the 256 colours is nearest its own level, but where
    a palette gives two levels one colour (viridis's 127 and 128), which comes back as the first."""
    for name in ("inverted", "magma", "viridis", "ice"):
        lut = palette_lut(name).float()
        back = torch.cdist(lut, lut).argmin(dim=1)
        assert torch.equal(lut[back], lut), name
        assert (back != torch.arange(256)).sum() <= (1 if name == "viridis" else 0), name
