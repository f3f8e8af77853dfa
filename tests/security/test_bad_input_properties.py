"""Properties of the central body check (gateway/web/bodies.py): a NUL character anywhere in a JSON value
is found and named by its path, and the depth limit is exact."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.web.bodies import InvalidInput, decode_json, find_deep_or_nul

text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


def string_leaves(value: Any, path: str = "") -> list[tuple[str, list[Any]]]:
    """(path, route) of every string leaf; a route is the keys/indexes that lead to it."""
    found: list[tuple[str, list[Any]]] = []

    def walk(item: Any, path: str, route: list[Any]) -> None:
        if isinstance(item, str):
            found.append((path, route))
        elif isinstance(item, dict):
            for key, child in item.items():
                walk(child, f"{path}.{key}" if path else key, [*route, key])
        elif isinstance(item, list):
            for i, child in enumerate(item):
                walk(child, f"{path}[{i}]", [*route, i])

    walk(value, path, [])
    return found


def with_nul_at(value: Any, route: list[Any]) -> Any:
    if not route:
        return value + "\x00"
    head, *rest = route
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = with_nul_at(value[head], rest)
    return copy


@given(json_values)
def test_a_value_without_nul_within_the_depth_limit_passes(value: Any) -> None:
    assert find_deep_or_nul(value, max_depth=32) is None
    assert decode_json(msgspec.json.encode(value), max_depth=32) == value


@given(json_values, st.data())
def test_a_nul_in_any_string_is_found_at_its_path(value: Any, data: st.DataObject) -> None:
    leaves = string_leaves(value)
    if not leaves:
        value, leaves = {"name": value, "note": "x"}, [("note", ["note"])]
    path, route = data.draw(st.sampled_from(leaves))
    problem = find_deep_or_nul(with_nul_at(value, route), max_depth=32)
    assert problem is not None and problem.code == "nul_character"
    assert problem.field == (path or None)
    # The same through the decoder, from the wire form.
    with pytest.raises(InvalidInput) as refused:
        decode_json(msgspec.json.encode(with_nul_at(value, route)), max_depth=32)
    assert refused.value.field == (path or None)


@given(st.integers(min_value=1, max_value=60), st.booleans())
def test_the_depth_limit_is_exact(depth: int, as_objects: bool) -> None:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value} if as_objects else [value]
    raw = msgspec.json.encode(value)
    if depth <= 32:
        assert decode_json(raw, max_depth=32) == value
    else:
        with pytest.raises(InvalidInput) as refused:
            decode_json(raw, max_depth=32)
        assert refused.value.code == "json_too_deep"
