import math

import pytest
from hypothesis import given, settings, strategies as st

from core.classes import (
    CLASS_NAMES, ClassSpecError, class_index, describe_class_weights, format_class_weights, parse_class_spec,
)


def test_aliases_are_case_insensitive():
    assert class_index("Boot") == class_index("ankle boot") == class_index("ANKLE BOOT") == 9
    assert class_index("purse") == class_index("bag") == 8
    assert class_index("Sneaker") == 7
    assert class_index("T-shirt/top") == 0
    assert class_index("3") == 3


def test_bare_name_means_weight_one_and_weights_normalise():
    assert parse_class_spec("boot") == [0.0] * 9 + [1.0]
    weights = parse_class_spec("sneaker:0.7, boot:0.3")
    assert weights[7] == pytest.approx(0.7) and weights[9] == pytest.approx(0.3)
    weights = parse_class_spec("sneaker:3,boot:1")
    assert weights[7] == pytest.approx(0.75) and sum(weights) == pytest.approx(1.0)


@pytest.mark.parametrize("spec, fragment", [
    ("shoe", "unknown class 'shoe'"),
    ("boot,boot:2", "given twice"),
    ("boot,ankle boot", "given twice"),
    ("boot:-1", "negative"),
    ("boot:0,bag:0", "sum to zero"),
    ("boot:nan", "not a finite number"),
    ("boot:inf", "not a finite number"),
    ("boot:1e9", "too large"),
    ("boot:abc", "not a number"),
    ("", "empty class spec"),
    ("boot,,bag", "empty entry"),
])
def test_bad_specs_give_clear_one_line_errors(spec, fragment):
    with pytest.raises(ClassSpecError) as info:
        parse_class_spec(spec)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_unknown_class_lists_valid_names():
    with pytest.raises(ClassSpecError, match="sneaker"):
        parse_class_spec("shoe")


def test_format_round_trips():
    weights = parse_class_spec("sneaker:0.7,boot:0.3")
    assert parse_class_spec(format_class_weights(weights)) == pytest.approx(weights)
    assert describe_class_weights(weights) == "sneaker70-boot30"
    assert len(CLASS_NAMES) == 10


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parser_fuzz_gives_value_or_clear_error(spec):
    try:
        weights = parse_class_spec(spec)
    except ClassSpecError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert len(weights) == 10 and math.isclose(sum(weights), 1.0, rel_tol=1e-9)
        assert all(w >= 0 for w in weights)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["boot", "bag", "coat", "shirt", "7", "tee"]),
                          st.floats(allow_nan=True, allow_infinity=True)), min_size=1, max_size=4))
def test_parser_fuzz_structured(entries):
    spec = ",".join(f"{name}:{weight!r}" for name, weight in entries)
    try:
        weights = parse_class_spec(spec)
    except ClassSpecError as error:
        assert "\n" not in str(error)
    else:
        assert math.isclose(sum(weights), 1.0, rel_tol=1e-9)
