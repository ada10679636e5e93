"""Serializers turn values into bytes and back, at their Prefect 1.x path too."""

from __future__ import annotations

import base64
import bz2
import datetime as dt
import gzip
import json
import lzma
import pickle
import zlib
from typing import Any

import cloudpickle
import pendulum
import pytest

from asyncflow import serializers as short_path
from asyncflow.engine.serializers import (
    CompressedSerializer,
    DateTimeSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
)


class TestPaths:
    def test_the_short_path_and_the_prefect_path_hold_the_same_classes(self) -> None:
        assert short_path.PickleSerializer is PickleSerializer
        assert short_path.CompressedSerializer is CompressedSerializer


class TestSerializer:
    @pytest.mark.parametrize("method", ["serialize", "deserialize"])
    def test_the_base_class_is_abstract(self, method: str) -> None:
        with pytest.raises(NotImplementedError):
            getattr(Serializer(), method)(b"x")

    def test_serializers_of_one_class_are_equal(self) -> None:
        assert PickleSerializer() == PickleSerializer()
        assert PickleSerializer() != JSONSerializer()
        assert hash(JSONSerializer()) == hash(JSONSerializer())


class TestPickleSerializer:
    def test_round_trips_what_plain_pickle_cannot(self) -> None:
        s = PickleSerializer()
        fn = s.deserialize(s.serialize(lambda x: x + 1))
        assert fn(1) == 2

    def test_writes_cloudpickle_bytes(self) -> None:
        assert cloudpickle.loads(PickleSerializer().serialize({"a": 1})) == {"a": 1}

    def test_reads_base64_encoded_pickles_of_older_writers(self) -> None:
        old = base64.b64encode(cloudpickle.dumps([1, 2]))
        assert PickleSerializer().deserialize(old) == [1, 2]

    def test_unreadable_bytes_raise_the_unpickling_error_itself(self) -> None:
        with pytest.raises(pickle.UnpicklingError):
            PickleSerializer().deserialize(b"not a pickle")


class TestJSONSerializer:
    def test_writes_json_text(self) -> None:
        assert json.loads(JSONSerializer().serialize({"a": [1, 2]})) == {"a": [1, 2]}

    def test_round_trips(self) -> None:
        s = JSONSerializer()
        assert s.deserialize(s.serialize(["x", 1.5, None])) == ["x", 1.5, None]

    def test_a_value_json_cannot_hold_raises_type_error(self) -> None:
        with pytest.raises(TypeError):
            JSONSerializer().serialize({1, 2})


class TestDateTimeSerializer:
    def test_writes_iso_8601(self) -> None:
        when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
        assert DateTimeSerializer().serialize(when) == b"2024-05-01T12:30:00Z"

    def test_reads_back_a_pendulum_datetime(self) -> None:
        s = DateTimeSerializer()
        when = pendulum.datetime(2024, 5, 1, 12, tz="Europe/Paris")
        back = s.deserialize(s.serialize(when))
        assert isinstance(back, pendulum.DateTime)
        assert back == when


class TestCompressedSerializer:
    @pytest.mark.parametrize(
        ("fmt", "module"), [("bz2", bz2), ("gzip", gzip), ("lzma", lzma), ("zlib", zlib)]
    )
    def test_standard_formats_compress_the_wrapped_bytes(self, fmt: str, module: Any) -> None:
        s = CompressedSerializer(PickleSerializer(), format=fmt)
        data = s.serialize({"k": "v" * 100})
        assert cloudpickle.loads(module.decompress(data)) == {"k": "v" * 100}
        assert s.deserialize(data) == {"k": "v" * 100}

    def test_takes_compression_functions_with_their_keyword_arguments(self) -> None:
        s = CompressedSerializer(
            JSONSerializer(),
            compress=zlib.compress,
            decompress=zlib.decompress,
            compress_kwargs={"level": 9},
        )
        assert s.deserialize(s.serialize([1, 2])) == [1, 2]
        assert zlib.decompress(s.serialize([1])) == b"[1]"

    def test_an_unknown_format_names_it_and_suggests_the_standard_ones(self) -> None:
        with pytest.raises(ImportError, match=r"'no_such_lib' is not installed.*bz2"):
            CompressedSerializer(PickleSerializer(), format="no_such_lib")

    def test_a_module_without_compression_functions_is_refused(self) -> None:
        with pytest.raises(ValueError, match="'json' has no compress/decompress"):
            CompressedSerializer(PickleSerializer(), format="json")

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"compress": zlib.compress},
            {"format": "zlib", "compress": zlib.compress, "decompress": zlib.decompress},
        ],
    )
    def test_needs_a_format_or_both_functions_but_not_both(self, kwargs: Any) -> None:
        with pytest.raises(ValueError, match="CompressedSerializer"):
            CompressedSerializer(PickleSerializer(), **kwargs)

    def test_corrupt_bytes_raise_the_decompression_error(self) -> None:
        with pytest.raises(zlib.error):
            CompressedSerializer(PickleSerializer(), format="zlib").deserialize(b"junk")

    def test_equal_when_every_part_is_equal(self) -> None:
        a = CompressedSerializer(PickleSerializer(), format="gzip")
        assert a == CompressedSerializer(PickleSerializer(), format="gzip")
        assert a != CompressedSerializer(JSONSerializer(), format="gzip")
        assert a != CompressedSerializer(PickleSerializer(), format="bz2")
        assert a != CompressedSerializer(
            PickleSerializer(), format="gzip", compress_kwargs={"compresslevel": 1}
        )
        assert a != PickleSerializer()
        assert hash(a) == hash(CompressedSerializer(PickleSerializer(), format="gzip"))
        assert repr(a) == "CompressedSerializer(PickleSerializer(), gzip)"
