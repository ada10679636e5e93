"""Specification of the defensive side of ``asyncflow.integrations.serialize``.

No value a run holds (a result, a parameter, a message) may break a listing or a stream: text
UTF-8 cannot encode is repaired, and values too large or too deep are cut to a marker. The
ordinary JSON forms are specified with the runtime, in ``test_integrations_runtime.py``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from asyncflow.engine.state import Failed, Mapped, Success
from asyncflow.integrations import serialize
from asyncflow.integrations.serialize import MAX_DEPTH, MAX_VALUE_CHARS


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def strict_json(data: Any) -> str:
    """What a client receives: UTF-8 JSON text, which must also parse back."""
    text = serialize.encode(data).decode("utf-8", "strict")
    json.loads(text)
    return text


class TestText:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("plain", "plain"),
            ("caf\u00e9 \u2603", "caf\u00e9 \u2603"),
            ("\ud800", "\ufffd"),
            ("a\udcffb", "a\ufffdb"),
            (os.fsdecode(b"report-\xff.txt"), "report-\ufffd.txt"),
        ],
    )
    def test_text_utf8_cannot_encode_has_each_such_character_replaced(
        self, value: str, expected: str
    ) -> None:
        assert serialize.text(value) == expected


class TestToJson:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ({"name": os.fsdecode(b"\xfe")}, {"name": "\ufffd"}),
            ({os.fsdecode(b"\xfe"): 1}, {"\ufffd": 1}),
            ([1, "\ud800"], [1, "\ufffd"]),
            (10**5000, "<int of 16610 bits>"),
            ({1, 2}, "{1, 2}"),
            ({10**5000}, "<set object>"),
            (ValueError("\udc80"), "ValueError('\\udc80')"),
        ],
        ids=[
            "surrogate in a value",
            "surrogate in a key",
            "surrogate in a list",
            "a huge int",
            "a set",
            "a huge int in a set",
            "an exception with a surrogate",
        ],
    )
    def test_no_value_fails_to_convert(self, value: Any, expected: Any) -> None:
        assert serialize.to_json(value) == expected
        strict_json(serialize.to_json(value))

    def test_a_value_whose_repr_raises_is_named_by_its_type(self) -> None:
        assert serialize.to_json(Unprintable()).startswith("<Unprintable instance at 0x")

    def test_a_value_nested_deeper_than_the_cap_becomes_the_truncated_marker(self) -> None:
        assert serialize.to_json(nested(MAX_DEPTH - 1)) == nested(MAX_DEPTH - 1)
        cut = serialize.to_json(nested(5000))
        assert cut["truncated"] is True
        assert cut["preview"].startswith("[[[[")
        assert len(cut["preview"]) <= MAX_VALUE_CHARS

    @pytest.mark.parametrize(
        "value",
        [list(range(1_000_000)), "x" * 1_000_000, {str(i): i for i in range(100_000)}],
        ids=["long list", "long text", "large dict"],
    )
    def test_a_value_larger_than_the_cap_becomes_the_marker_with_a_preview(
        self, value: Any
    ) -> None:
        cut = serialize.to_json(value)
        assert cut["truncated"] is True
        assert serialize.dumps(value)[:100] == cut["preview"][:100]
        assert MAX_VALUE_CHARS * 3 // 4 <= len(cut["preview"]) <= MAX_VALUE_CHARS

    def test_a_value_just_under_the_cap_is_kept_whole(self) -> None:
        value = "x" * (MAX_VALUE_CHARS - 10)
        assert serialize.to_json(value) == value


class TestStatesWithHostileValues:
    def test_a_state_with_a_huge_result_keeps_its_other_fields(self) -> None:
        state = Success(os.fsdecode(b"done \xff"), list(range(100_000)))
        out = serialize.state_json(state)
        assert out["message"] == "done \ufffd"
        assert out["result"]["truncated"] is True
        assert len(strict_json(out)) < 2 * MAX_VALUE_CHARS

    def test_the_map_states_of_a_huge_mapped_state_are_cut_as_one_value(self) -> None:
        children = [Success("Task run succeeded.", i) for i in range(10_000)]
        out = serialize.state_json(Mapped("Mapped.", list(range(10_000)), map_states=children))
        assert out["map_states"]["truncated"] is True
        assert len(strict_json(out)) < 3 * MAX_VALUE_CHARS

    def test_a_failed_states_exception_with_surrogates_is_its_repaired_repr(self) -> None:
        out = serialize.state_json(Failed("boom", OSError(os.fsdecode(b"\xff"))))
        assert out["result"] == "OSError('\\udcff')"
        strict_json(out)
