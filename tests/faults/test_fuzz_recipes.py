"""Fuzzing what comes from files other people send: the PNG recipe reader and the recipe -> request step.

Any input gives a value or a one-line ValueError; never another exception.
"""

from __future__ import annotations

import json
import struct
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image, PngImagePlugin

from core.classes import MIX_METHODS
from core.sampling.recipes import recipe, request_from_recipe
from core.images import MAX_SCALE, METADATA_KEY, make_grid, read_metadata, save_png, to_pil
from core.sampling.limits import (
    AUTOGUIDANCE_RANGE, GUIDANCE_RANGE, MAX_BLACK_LEVEL, MAX_ITEMS, MAX_SEED, MAX_STEPS, MIN_STEPS, SAMPLERS,
)
from core.sampling.request import SampleRequest

SIGNATURE = b"\x89PNG\r\n\x1a\n"
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(*chunks: bytes, width: int = 2, height: int = 2) -> bytes:
    """A PNG with the given chunks between the header and a valid 2x2 grey image."""
    pixels = zlib.compress(b"".join(b"\x00" + bytes(width) for _ in range(height)))
    return (SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + b"".join(chunks)
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def text_chunk(value: str, key: str = METADATA_KEY) -> bytes:
    return chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))


def read(path, blob: bytes):
    """read_metadata on a file holding blob: a dict, or the ValueError's message (checked to be one line)."""
    path.write_bytes(blob)
    try:
        data = read_metadata(path)
    except ValueError as error:
        message = str(error)
        assert message and "\n" not in message and message.startswith(str(path)), message
        return message
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A real export: a PNG written by save_png with a real recipe."""
    request = SampleRequest([0.0] * 7 + [0.7, 0.0, 0.3], n=4, seed=5).validate()
    meta = recipe(request, "0123456789abcdef", "tiny.pt", index=1) | {"palette": "grey", "scale": 1}
    path = save_png(to_pil(torch.zeros(28, 28, dtype=torch.uint8)), tmp_path_factory.mktemp("png") / "item.png", meta)
    return path.read_bytes(), meta


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "file.png"


def test_a_real_export_round_trips(exported, target):
    blob, meta = exported
    assert read(target, blob) == meta
    request, index = request_from_recipe(read(target, blob))
    assert index == 1 and request.seed == 5 and request.class_weights[7] == pytest.approx(0.7)


def test_our_largest_export_is_readable(target):
    """64 items at scale 64 make a 15488 x 15488 grid (240M pixels): Pillow refuses to open that as a
    decompression bomb, so the recipe must be read without decoding the image."""
    side = (8 * (28 + 2) + 2) * MAX_SCALE
    assert make_grid(torch.zeros(64, 1, 28, 28), 8).shape == (side // MAX_SCALE, side // MAX_SCALE)
    header = SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
    blob = header + text_chunk(json.dumps({"n": 64})) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    assert read(target, blob) == {"n": 64}


def test_compressed_and_international_text_chunks(target):
    info = PngImagePlugin.PngInfo()
    info.add_itxt(METADATA_KEY, json.dumps({"classes": "sneaker", "note": "Größe ✓"}, ensure_ascii=False), zip=True)
    image = Image.new("L", (2, 2))
    image.save(target, format="PNG", pnginfo=info)
    assert read_metadata(target) == {"classes": "sneaker", "note": "Größe ✓"}
    ztxt = chunk(b"zTXt", METADATA_KEY.encode() + b"\0\0" + zlib.compress(b'{"n": 3}'))
    assert read(target, png(ztxt)) == {"n": 3}
    assert "damaged text chunk" in read(target, png(chunk(b"zTXt", METADATA_KEY.encode() + b"\0\0not zlib")))


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(target, blob):
    read(target, blob)
    read(target, SIGNATURE + blob)


@FUZZ
@given(st.data())
def test_damaged_exports(exported, target, data):
    """A real export, truncated or with bytes overwritten anywhere (header, recipe, CRCs, pixels)."""
    blob = bytearray(exported[0])
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    for _ in range(data.draw(st.integers(0, 4))):
        if blob:
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    result = read(target, bytes(blob))
    assert isinstance(result, (dict, str))


@FUZZ
@given(st.text(alphabet=st.characters(max_codepoint=255), max_size=200))
def test_arbitrary_text_under_our_key(target, text):
    result = read(target, png(text_chunk(text)))
    try:
        expected = json.loads(text)
    except (ValueError, RecursionError):
        expected = None
    if isinstance(expected, dict):
        assert json.dumps(result, sort_keys=True) == json.dumps(expected, sort_keys=True)
    else:
        assert isinstance(result, str) and "damaged fashion-tui recipe" in result


@FUZZ
@given(JSON)
def test_any_json_under_our_key(target, value):
    result = read(target, png(text_chunk(json.dumps(value, ensure_ascii=True))))
    if isinstance(value, dict):
        assert json.dumps(result, sort_keys=True) == json.dumps(value, sort_keys=True)  # NaN != NaN, so compare text
    else:
        assert "damaged fashion-tui recipe" in result


def test_deeply_nested_json_is_damaged_not_a_crash(target):
    assert "damaged fashion-tui recipe" in read(target, png(text_chunk("[" * 100_000 + "]" * 100_000)))
    assert "damaged fashion-tui recipe" in read(target, png(text_chunk('{"a":' * 50_000 + "1" + "}" * 50_000)))


# ------------------------------------------------------------------ request_from_recipe

VALID = recipe(SampleRequest([0.0] * 9 + [1.0], n=3, seed=7).validate(), "0123456789abcdef", "tiny.pt", index=2)
KEYS = sorted(VALID) + ["per_item_weights", "index"]
ODD = JSON | st.sampled_from([float("inf"), float("-inf"), float("nan"), 10**400, -(10**30), 2**63, 1e308, True])


def from_recipe(data):
    try:
        request, index = request_from_recipe(data)
    except ValueError as error:
        assert str(error) and "\n" not in str(error), str(error)
        return None
    assert isinstance(request, SampleRequest) and request.validate() is request
    assert index is None or 0 <= index < request.n
    return request, index


def test_a_valid_recipe_round_trips():
    request, index = from_recipe(VALID)
    assert index == 2 and request.n == 3 and request.seed == 7 and request.class_weights[9] == 1.0


def test_guidance_interval_round_trips_and_older_recipes_guided_every_step():
    assert VALID["guidance_interval"] == [21, 400]
    assert from_recipe(VALID)[0].guidance_interval == (21, 400)
    earlier = recipe(SampleRequest([1.0] + [0.0] * 9, guidance_interval=(0, 500)).validate(), "0123456789abcdef", "x.pt")
    assert from_recipe(json.loads(json.dumps(earlier)))[0].guidance_interval == (0, 500)  # the old default is kept
    custom = recipe(SampleRequest([1.0] + [0.0] * 9, guidance_interval=(100, 900)).validate(), "0123456789abcdef", "x.pt")
    assert from_recipe(json.loads(json.dumps(custom)))[0].guidance_interval == (100, 900)
    classic = recipe(SampleRequest([1.0] + [0.0] * 9, guidance_interval=None).validate(), "0123456789abcdef", "x.pt")
    assert from_recipe(classic)[0].guidance_interval is None
    older = {k: v for k, v in VALID.items() if k not in ("guidance_interval", "black_level")}
    assert from_recipe(older)[0].guidance_interval is None and from_recipe(older)[0].black_level == 0
    assert VALID["black_level"] == 4 and from_recipe(VALID)[0].black_level == 4
    assert from_recipe(VALID | {"black_level": 0})[0].black_level == 0
    for bad in (-1, 33, 4.0, "4", None):
        assert from_recipe(VALID | {"black_level": bad}) is None
    for bad in ([600, 0], [0], "0:600", [0.0, 600]):
        assert from_recipe(VALID | {"guidance_interval": bad}) is None


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), ODD, max_size=12))
def test_arbitrary_dicts(data):
    from_recipe(data)


@FUZZ
@given(st.sampled_from(KEYS), ODD | st.lists(ODD, min_size=10, max_size=10) | st.lists(st.lists(ODD, min_size=10, max_size=10), max_size=4))
def test_one_field_of_a_valid_recipe_replaced(key, value):
    from_recipe(VALID | {key: value})


@pytest.mark.parametrize("data", [None, [], [VALID], "recipe", 3, 2.5])
def test_not_a_dict(data):
    with pytest.raises(ValueError, match="recipe is damaged"):
        request_from_recipe(data)


# ------------------------------------------------------------------ any valid request, there and back

WEIGHTS = st.lists(st.floats(0, 100), min_size=10, max_size=10).filter(lambda row: sum(row) > 1e-3)


@st.composite
def requests(draw) -> SampleRequest:
    """Any valid request: every field drawn over its whole range, defaults no likelier than other values."""
    n = draw(st.integers(1, MAX_ITEMS))
    strip = draw(st.booleans())
    interval = draw(st.none() | st.lists(st.integers(0, MAX_STEPS - 1), min_size=2, max_size=2).map(sorted).map(tuple))
    variation_seed = draw(st.none() | st.integers(0, MAX_SEED))
    return SampleRequest(
        class_weights=draw(WEIGHTS), n=n, guidance=draw(st.floats(*GUIDANCE_RANGE)), sampler=draw(st.sampled_from(SAMPLERS)),
        steps=draw(st.integers(MIN_STEPS, MAX_STEPS)), seed=draw(st.integers(0, MAX_SEED)), shared_noise=draw(st.booleans()),
        per_item_weights=draw(st.lists(WEIGHTS, min_size=n, max_size=n)) if strip else None, guidance_interval=interval,
        black_level=draw(st.integers(0, MAX_BLACK_LEVEL)), mix=draw(st.sampled_from(MIX_METHODS)),
        autoguidance=draw(st.floats(*AUTOGUIDANCE_RANGE)), precision=draw(st.sampled_from(("bf16", "fp32"))),
        variation_seed=variation_seed, variation_strength=0.0 if variation_seed is None else draw(st.floats(0, 1)),
        init_image=draw(st.none() | st.binary(min_size=28 * 28, max_size=28 * 28)), init_strength=draw(st.floats(0, 1)),
        switch_to=draw(st.none() | WEIGHTS), switch_at=draw(st.floats(0, 1)),
    ).validate()


@FUZZ
@given(requests(), st.none() | st.integers(0, MAX_ITEMS - 1))
def test_any_valid_request_comes_back_from_its_recipe(request, index):
    index = None if index is None else index % request.n
    data = json.loads(json.dumps(recipe(request, "0123456789abcdef", "tiny.pt", index, ("guide.pt", "fedcba9876543210"))))
    again, found = request_from_recipe(data)
    want, got = request.to_dict(), again.to_dict()
    for name in ("class_weights", "per_item_weights", "switch_to"):  # renormalised on the way back: equal to the last bits
        mine, back = weight_rows(want, name), weight_rows(got, name)
        assert len(mine) == len(back), name
        for row, row_back in zip(mine, back):
            assert row_back == pytest.approx(row, rel=1e-12, abs=1e-15), name
    assert got == want and found == index


def weight_rows(data: dict, name: str) -> list[list[float]]:
    """Pop a field of class weights from a request's dict as a list of rows ([] for None)."""
    value = data.pop(name)
    return [] if value is None else value if name == "per_item_weights" else [value]
