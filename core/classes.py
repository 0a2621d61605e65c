"""Fashion-MNIST class names, the aliases people type, and class-mixing specs.

A mix is a length-10 weight vector that sums to 1; the model's condition is the
weighted sum of class embeddings, so `{"sneaker": 0.7, "boot": 0.3}` blends two.
"""

from __future__ import annotations

import math

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)

# Short names used in file names and the UI, one per class.
SHORT_NAMES: tuple[str, ...] = (
    "tshirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "boot",
)

_ALIASES: dict[str, int] = {
    "t-shirt": 0, "tshirt": 0, "t-shirt/top": 0, "tee": 0, "top": 0, "t_shirt": 0,
    "trouser": 1, "trousers": 1, "pants": 1, "jeans": 1,
    "pullover": 2, "sweater": 2, "jumper": 2,
    "dress": 3,
    "coat": 4, "jacket": 4,
    "sandal": 5, "sandals": 5,
    "shirt": 6,
    "sneaker": 7, "sneakers": 7, "trainer": 7, "trainers": 7,
    "bag": 8, "purse": 8, "handbag": 8,
    "ankle boot": 9, "ankle-boot": 9, "ankle_boot": 9, "ankleboot": 9, "boot": 9, "boots": 9,
}

MAX_WEIGHT = 1000.0  # larger raw weights are almost certainly typos

# How a mix of classes becomes the model's prediction (core.model.mixing has the maths).
MIX_METHODS: tuple[str, ...] = ("compose", "norm", "average", "compose-all")
MIX_DESCRIPTIONS: dict[str, str] = {
    "compose": "guidance summed over the picked classes where it acts, norm elsewhere (crisp; ~1.25x the time of one class)",
    "norm": "averaged class embedding rescaled to the classes' own length (as fast as one class; some speckle)",
    "average": "averaged class embedding (the original design's way; faint ghosts at 50/50)",
    "compose-all": "per-class predictions combined at every step (one model call per picked class)",
}
DEFAULT_MIX = "compose"
LEGACY_MIX = "average"  # recipes written before the mix method was stored


class ClassSpecError(ValueError):
    """A class name or mixing spec the user typed cannot be used."""


def valid_names_hint() -> str:
    return "valid classes: " + ", ".join(SHORT_NAMES) + " (or 0-9)"


def class_index(name: str) -> int:
    """Class index for a name, alias or digit; case-insensitive."""
    key = " ".join(str(name).strip().lower().split())
    if key.isascii() and key.isdigit() and 0 <= int(key) < NUM_CLASSES:
        return int(key)
    if key in _ALIASES:
        return _ALIASES[key]
    raise ClassSpecError(f"unknown class {name!r}; {valid_names_hint()}")


def normalise_weights(weights: dict[int, float]) -> list[float]:
    """Raw per-class weights -> a length-10 vector summing to 1."""
    if not weights:
        raise ClassSpecError(f"no class given; {valid_names_hint()}")
    for index, weight in weights.items():
        if not 0 <= index < NUM_CLASSES:
            raise ClassSpecError(f"class index {index} out of range 0-9")
        if not math.isfinite(weight):
            raise ClassSpecError(f"weight for {SHORT_NAMES[index]} is not a finite number")
        if weight < 0:
            raise ClassSpecError(f"weight for {SHORT_NAMES[index]} is negative ({weight:g})")
        if weight > MAX_WEIGHT:
            raise ClassSpecError(f"weight for {SHORT_NAMES[index]} is too large ({weight:g} > {MAX_WEIGHT:g})")
    total = sum(weights.values())
    if total <= 0:
        raise ClassSpecError("class weights sum to zero; give at least one class a positive weight")
    vector = [0.0] * NUM_CLASSES
    for index, weight in weights.items():
        vector[index] = weight / total
    return vector


def parse_class_spec(spec: str) -> list[float]:
    """Parse "sneaker:0.7,boot:0.3" (a bare name means weight 1) into 10 weights summing to 1."""
    if not isinstance(spec, str) or not spec.strip():
        raise ClassSpecError(f"empty class spec; {valid_names_hint()}")
    weights: dict[int, float] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise ClassSpecError(f"empty entry in class spec {spec!r}")
        name, sep, raw_weight = part.rpartition(":") if ":" in part else (part, "", "")
        name = name.strip()
        if sep:
            try:
                weight = float(raw_weight)
            except ValueError:
                raise ClassSpecError(f"weight {raw_weight.strip()!r} for {name!r} is not a number") from None
        else:
            weight = 1.0
        index = class_index(name)
        if index in weights:
            raise ClassSpecError(f"class {SHORT_NAMES[index]!r} given twice in {spec!r}")
        weights[index] = weight
    return normalise_weights(weights)


def format_class_weights(weights: list[float]) -> str:
    """Inverse of parse_class_spec: "sneaker:0.7,boot:0.3" (zero weights left out)."""
    return ",".join(f"{SHORT_NAMES[i]}:{w:.4g}" for i, w in enumerate(weights) if w > 0)


def describe_class_weights(weights: list[float]) -> str:
    """Short human label for file names: "sneaker70-boot30" or "boot"."""
    picked = [(i, w) for i, w in enumerate(weights) if w > 0]
    if len(picked) == 1:
        return SHORT_NAMES[picked[0][0]]
    return "-".join(f"{SHORT_NAMES[i]}{round(100 * w)}" for i, w in picked)
