"""highdicom's module table read one module at a time (viewer.model.sr_tables)."""
from __future__ import annotations

import json

import pytest

from viewer.model.sr_tables import loads_in_steps, preload_module_table


@pytest.mark.parametrize("text", [
    '{"a": [1, {"b": "é\\u00e9"}], "c": {"d": null}, "e": 1.5e3}',
    ' \n{ "only" : [ ] } \n',
    "{}",
    "[1, 2, 3]",
    '"just a string"',
])
def test_stepwise_decoding_equals_json_loads(text: str) -> None:
    assert loads_in_steps(text) == json.loads(text)


def test_other_threads_get_a_turn_after_every_member() -> None:
    pauses = []
    assert loads_in_steps('{"a": 1, "b": [2], "c": {}}', pause=lambda: pauses.append(1)) == {
        "a": 1, "b": [2], "c": {}}
    assert len(pauses) == 3


@pytest.mark.parametrize("text", ['{"a" 1}', '{"a": 1 "b": 2}', '{"a": 1,}', '{"a": 1'])
def test_broken_json_is_refused_like_json_loads(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_in_steps(text)


def test_preload_fills_highdicoms_own_cache_with_the_same_table() -> None:
    from importlib.resources import files

    from highdicom import _standard_utils as standard

    standard.get_module_attribute_map.cache_clear()
    try:
        assert preload_module_table() is True
        assert standard.json is json                                  # put back
        assert standard.get_module_attribute_map.cache_info().currsize == 1
        assert preload_module_table() is False                        # already cached
        raw = files("highdicom").joinpath("_standard/module_attribute_map.json").read_text("utf-8")
        assert standard.get_module_attribute_map() == json.loads(raw)
    finally:
        standard.get_module_attribute_map.cache_clear()
