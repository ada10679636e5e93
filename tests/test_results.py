"""Result, LocalResult and PrefectResult: Prefect 1.x's interface, at its paths and ours."""

from __future__ import annotations

import os
import pickle
from typing import TYPE_CHECKING, Any

import pytest

from asyncflow import results as short_path
from asyncflow.engine.result import Result
from asyncflow.engine.results import LocalResult, PrefectResult
from asyncflow.engine.serializers import (
    DateTimeSerializer,
    JSONSerializer,
    PickleSerializer,
)
from asyncflow.exceptions import AsyncflowError, ResultNotImplementedError

if TYPE_CHECKING:
    from pathlib import Path


pytestmark = pytest.mark.usefixtures("home")


class TestPaths:
    def test_the_short_path_holds_the_prefect_path_classes(self) -> None:
        assert short_path.Result is Result
        assert (short_path.LocalResult, short_path.PrefectResult) == (LocalResult, PrefectResult)


class TestResult:
    def test_holds_a_value_a_location_and_a_pickle_serializer_by_default(self) -> None:
        r = Result(3, location="x.txt")
        assert (r.value, r.location, r.serializer) == (3, "x.txt", PickleSerializer())
        assert Result().value is None

    @pytest.mark.parametrize("method", ["exists", "read", "write"])
    def test_storage_methods_are_left_to_subclasses(self, method: str) -> None:
        with pytest.raises(ResultNotImplementedError, match=f"{method}\\(\\) is not implemented"):
            getattr(Result(), method)("x")
        assert issubclass(ResultNotImplementedError, AsyncflowError)
        assert issubclass(ResultNotImplementedError, NotImplementedError)

    def test_repr_shows_the_class_and_value(self) -> None:
        assert repr(Result(3)) == "<Result: 3>"
        assert repr(LocalResult(value="a")) == "<LocalResult: 'a'>"

    def test_results_are_equal_by_public_attributes(self) -> None:
        assert Result(1) == Result(1)
        assert Result(1) != Result(2)
        assert Result(1) != Result(1, location="here")
        assert Result(1) != PrefectResult(value=1)

    def test_format_renders_the_location_template_into_a_copy(self) -> None:
        r = Result(location="{flow_name}/{x}.bin")
        out = r.format(flow_name="etl", x=3)
        assert out.location == "etl/3.bin"
        assert r.location == "{flow_name}/{x}.bin"

    def test_format_calls_a_callable_location_with_the_keywords(self) -> None:
        r = Result(location=lambda **kw: f"{kw['a']}-{kw['b']}")
        assert r.location is None
        assert r.format(a=1, b=2).location == "1-2"

    def test_format_without_a_location_uses_a_fresh_default(self) -> None:
        first, second = Result().format().location, Result().format().location
        assert first is not None
        assert first.endswith(".asyncflow_result")
        assert first != second

    def test_format_with_an_unknown_key_raises_key_error(self) -> None:
        with pytest.raises(KeyError, match="missing"):
            Result(location="{missing}").format(other=1)

    def test_from_value_is_a_copy_with_the_value_and_no_location(self) -> None:
        r = Result(1, location="x")
        new = r.from_value(2)
        assert (new.value, new.location, r.value) == (2, None, 1)

    @pytest.mark.parametrize(
        ("kwargs", "culprit"),
        [({"location": 3}, "location"), ({"serializer": "json"}, "serializer")],
    )
    def test_bad_arguments_are_refused_by_name(self, kwargs: Any, culprit: str) -> None:
        with pytest.raises(TypeError, match=culprit):
            Result(**kwargs)

    @pytest.mark.parametrize(
        "obj", [Result(3), LocalResult(location="{x}"), PrefectResult(value=[1])]
    )
    def test_results_pickle(self, obj: Result) -> None:
        assert pickle.loads(pickle.dumps(obj)) == obj


class TestLocalResult:
    def test_defaults_to_the_results_folder_of_asyncflow_home(self, home: Path) -> None:
        r = LocalResult()
        assert r.dir == str(home / "results")
        assert os.path.isdir(r.dir)

    def test_without_asyncflow_home_the_folder_is_under_the_user_home(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.delenv("ASYNCFLOW_HOME")
        monkeypatch.setenv("HOME", str(tmp_path))
        assert LocalResult().dir == str(tmp_path / ".asyncflow" / "results")

    def test_validate_dir_makes_the_folder_absolute_and_creates_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        r = LocalResult(dir="out/results")
        assert r.dir == str(tmp_path / "out" / "results")
        assert os.path.isdir(r.dir)

    def test_without_validation_the_folder_is_taken_as_given(self, tmp_path: Path) -> None:
        r = LocalResult(dir=str(tmp_path / "later"), validate_dir=False)
        assert r.dir == str(tmp_path / "later")
        assert not os.path.exists(r.dir)

    def test_write_renders_the_template_and_creates_folders(self, tmp_path: Path) -> None:
        r = LocalResult(dir=tmp_path, location="{day}/{name}.pkl")
        written = r.write({"v": 1}, day="mon", name="a")
        assert written.location == str(tmp_path / "mon" / "a.pkl")
        assert written.value == {"v": 1}
        assert r.location == "{day}/{name}.pkl"  # the original is unchanged
        assert PickleSerializer().deserialize((tmp_path / "mon" / "a.pkl").read_bytes()) == {"v": 1}

    def test_write_without_a_location_picks_a_new_file_in_the_folder(self, tmp_path: Path) -> None:
        written = LocalResult(dir=tmp_path).write(7)
        assert written.location is not None
        assert os.path.dirname(written.location) == str(tmp_path)
        assert os.path.basename(written.location).startswith("asyncflow-result-")

    @pytest.mark.parametrize("serializer", [PickleSerializer(), JSONSerializer()])
    def test_what_is_written_reads_back(self, tmp_path: Path, serializer: Any) -> None:
        r = LocalResult(dir=tmp_path, serializer=serializer)
        written = r.write([1, "a"])
        assert written.location is not None
        back = r.read(written.location)
        assert (back.value, back.location) == ([1, "a"], written.location)

    def test_exists_renders_the_location_and_checks_the_file(self, tmp_path: Path) -> None:
        r = LocalResult(dir=tmp_path)
        assert not r.exists("{x}.bin", x=1)
        LocalResult(dir=tmp_path, location="{x}.bin").write(5, x=1)
        assert r.exists("{x}.bin", x=1)
        assert r.exists(str(tmp_path / "1.bin"))  # a full path works as well

    def test_reading_a_missing_file_raises_file_not_found(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            LocalResult(dir=tmp_path).read("nope.bin")

    def test_a_value_the_serializer_refuses_writes_no_file(self, tmp_path: Path) -> None:
        r = LocalResult(dir=tmp_path, location="x.json", serializer=JSONSerializer())
        with pytest.raises(TypeError):
            r.write(object())
        assert not (tmp_path / "x.json").exists()


class TestPrefectResult:
    def test_the_location_is_the_json_of_the_value(self) -> None:
        written = PrefectResult().write({"a": [1, 2]})
        assert (written.value, written.location) == ({"a": [1, 2]}, '{"a": [1, 2]}')

    def test_read_decodes_the_location(self) -> None:
        r = PrefectResult(value=1)
        back = r.read("[3, 4]")
        assert (back.value, back.location, r.value) == ([3, 4], "[3, 4]", 1)

    def test_write_leaves_the_original_alone(self) -> None:
        r = PrefectResult(value=1)
        r.write(2)
        assert r.value == 1

    @pytest.mark.parametrize(
        ("location", "exists"), [('"x"', True), ("[1, 2]", True), ("null", True), ("{x", False)]
    )
    def test_exists_when_the_location_decodes(self, location: str, exists: bool) -> None:
        assert PrefectResult().exists(location) is exists

    def test_datetime_serializer_is_accepted(self) -> None:
        assert PrefectResult(serializer=DateTimeSerializer()).serializer == DateTimeSerializer()

    def test_other_serializers_are_refused(self) -> None:
        with pytest.raises(TypeError, match="only supports JSONSerializer or DateTimeSerializer"):
            PrefectResult(serializer=PickleSerializer())
        r = PrefectResult()
        with pytest.raises(TypeError, match="only supports"):
            r.serializer = PickleSerializer()

    def test_a_value_json_cannot_hold_raises_type_error(self) -> None:
        with pytest.raises(TypeError):
            PrefectResult().write(object())
