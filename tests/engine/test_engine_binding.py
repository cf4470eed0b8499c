"""jobspool.binding: from an allow-listed class path to validated call arguments."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobspool import binding
from jobspool.binding import bind, check, load_class
from jobspool.errors import InvalidParams, NotAllowed
from tests.support.testjobs import Marker, Typed


class Shapes:
    """Every kind of parameter and method the binder must handle."""

    label = "not callable"

    def mixed(self, a: int, /, b: str, *rest: float, flag: bool = False, **more: int) -> None:
        pass

    def untyped(self, x, y=2):  # type: ignore[no-untyped-def]
        pass

    def listed(self, items: list[int]) -> None:
        pass

    def keywords(self, **more: int) -> None:
        pass

    @staticmethod
    def static(n: int) -> int:
        return n

    @classmethod
    def klass(cls, n: int) -> int:
        return n

    def _hidden(self) -> None:
        pass


def test_positional_and_keyword_params_bind_with_defaults() -> None:
    assert bind(Typed, "add", [1, 2]) == ([1, 2], {})
    assert bind(Typed, "add", [1]) == ([1], {})
    assert bind(Typed, "add", {"a": 1, "b": 5}) == ([1, 5], {})
    assert bind(Typed, "greet", {"name": "bob", "loud": True}) == (["bob"], {"loud": True})
    assert bind(Marker, "touch", ["/x"]) == (["/x"], {})


def test_values_are_validated_and_coerced_to_the_hints() -> None:
    assert bind(Typed, "add", ["1", "2"]) == ([1, 2], {})
    assert bind(Shapes, "listed", [["1", 2]]) == ([[1, 2]], {})
    assert bind(Shapes, "mixed", [1, "b", "1.5", 2]) == ([1, "b", 1.5, 2.0], {})
    assert bind(Shapes, "mixed", [1, "b"]) == ([1, "b"], {})
    args, kwargs = bind(Shapes, "mixed", [1, "b", 3])
    assert args == [1, "b", 3.0]
    assert kwargs == {}
    assert bind(Shapes, "untyped", [object, "anything"])[0] == [object, "anything"]


@pytest.mark.parametrize(
    ("cls", "method", "params", "message"),
    [
        pytest.param(Typed, "add", ["x"], "param 'a': Input should be a valid integer", id="type"),
        pytest.param(Typed, "add", [1.5], "param 'a'", id="fraction"),
        pytest.param(Typed, "add", [1, 2, 3], "too many positional arguments", id="too-many"),
        pytest.param(Typed, "add", [], "missing a required argument: 'a'", id="missing"),
        pytest.param(
            Typed, "add", {"a": 1, "z": 2}, "unexpected keyword argument 'z'", id="unknown-keyword"
        ),
        pytest.param(
            Typed,
            "greet",
            ["bob", True],
            "too many positional arguments",
            id="keyword-only-by-position",
        ),
        pytest.param(
            Shapes,
            "mixed",
            {"a": 1, "b": "x"},
            "'a' parameter is positional only",
            id="positional-only-by-name",
        ),
        pytest.param(Shapes, "mixed", [1, "b", "x"], "param 'rest'", id="var-positional"),
        pytest.param(Shapes, "mixed", {"b": "x"}, "missing a required argument", id="missing-a"),
        pytest.param(Shapes, "listed", [[1, "two"]], "param 'items'", id="list-item"),
    ],
)
def test_params_that_do_not_fit_are_refused(
    cls: type, method: str, params: list[Any] | dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParams, match=message):
        bind(cls, method, params)


class Plain:
    def take(self, s: str, i: int, f: float, b: bool) -> None:
        pass


_PLAIN_HINTS = {"s": str, "i": int, "f": float, "b": bool}
_ANY_PLAIN = st.one_of(st.text(), st.integers(), st.floats(), st.booleans())


@given(s=_ANY_PLAIN, i=_ANY_PLAIN, f=_ANY_PLAIN, b=_ANY_PLAIN)
@settings(max_examples=200, deadline=None)
def test_plain_hints_bind_exactly_as_pydantic_validates(
    s: object, i: object, f: object, b: object
) -> None:
    """A value of exactly its hint's type skips the validator: what it binds
    to must still be what pydantic gives, of the same type, or be refused."""
    from pydantic import TypeAdapter, ValidationError

    given_values = {"s": s, "i": i, "f": f, "b": b}
    expected: dict[str, object] = {}
    for name, value in given_values.items():
        try:
            expected[name] = TypeAdapter(_PLAIN_HINTS[name]).validate_python(value)
        except ValidationError:
            with pytest.raises(InvalidParams, match=f"param '{name}'"):
                bind(Plain, "take", given_values)
            return
    args, kwargs = bind(Plain, "take", given_values)
    assert kwargs == {}
    for got, name in zip(args, _PLAIN_HINTS, strict=True):
        want = expected[name]
        assert type(got) is type(want)
        assert repr(got) == repr(want)  # NaN and -0.0 too


def test_var_keyword_values_are_validated() -> None:
    assert bind(Shapes, "keywords", {"n": "3"}) == ([], {"n": 3})
    with pytest.raises(InvalidParams, match="param 'extra'"):
        bind(Shapes, "keywords", {"extra": "nope"})


def test_static_and_class_methods_bind_without_self() -> None:
    assert bind(Shapes, "static", ["4"]) == ([4], {})
    assert bind(Shapes, "klass", [5]) == ([5], {})


@pytest.mark.parametrize(
    ("method", "message"),
    [
        pytest.param("_hidden", "is private", id="private"),
        pytest.param("__init__", "is private", id="dunder"),
        pytest.param("nothing", "has no method 'nothing'", id="missing"),
        pytest.param("label", "has no method 'label'", id="attribute"),
    ],
)
def test_methods_that_may_not_be_called(method: str, message: str) -> None:
    with pytest.raises(NotAllowed, match=message):
        bind(Shapes, method, [])


def test_load_class_takes_only_module_dot_class() -> None:
    assert load_class("tests.support.testjobs.Marker") is Marker
    assert load_class("jobs.SampleJob").__name__ == "SampleJob"
    with pytest.raises(NotAllowed, match="is not a class"):
        load_class("os.system")
    with pytest.raises(NotAllowed, match=r"not a module\.Class path"):
        load_class("Marker")
    with pytest.raises(NotAllowed, match=r"not a module\.Class path"):
        load_class("tests.support.testjobs._Hidden")
    with pytest.raises(NotAllowed, match="is not a class"):
        load_class("tests.support.testjobs.Nothing")
    with pytest.raises(ImportError):
        load_class("no_such_module_here.Thing")


def test_check_imports_and_binds_without_running(tmp_path: Any) -> None:
    marker = tmp_path / "marker"
    check("tests.support.testjobs.Marker", "touch", [str(marker)])
    assert not marker.exists()
    with pytest.raises(InvalidParams):
        check("tests.support.testjobs.Marker", "touch", [])


def _f0() -> None: ...
def _f1(a, b=1): ...  # type: ignore[no-untyped-def]
def _f2(a, /, b, *rest, c, d=4, **more): ...  # type: ignore[no-untyped-def]
def _f3(a=1, /, *, k): ...  # type: ignore[no-untyped-def]
def _f4(*args, **kwargs): ...  # type: ignore[no-untyped-def]
def _f5(a, b, /, c=3, *, d, e=5): ...  # type: ignore[no-untyped-def]
def _f6(x, *rest): ...  # type: ignore[no-untyped-def]


_NAMES = ["a", "b", "c", "d", "e", "k", "x", "rest", "more", "args", "z"]


@pytest.mark.parametrize("func", [_f0, _f1, _f2, _f3, _f4, _f5, _f6])
@given(
    args=st.lists(st.integers(0, 9), max_size=5),
    kwargs=st.dictionaries(st.sampled_from(_NAMES), st.integers(0, 9), max_size=4),
)
@settings(max_examples=150, deadline=None)
def test_binding_follows_signature_bind(
    func: Callable[..., Any], args: list[int], kwargs: dict[str, int]
) -> None:
    """The code-object binder agrees with inspect on every call: the same
    arguments bound, the same split into args and kwargs, the same refusal."""
    params = binding._code_params(func)
    try:
        expected = inspect.signature(func).bind(*args, **kwargs)
    except TypeError as exc:
        with pytest.raises(TypeError) as got:
            binding.bind_arguments(params, args, kwargs)
        assert str(got.value) == str(exc)
        return
    bound = binding.bind_arguments(params, args, kwargs)
    assert bound == dict(expected.arguments)
    assert binding.call_arguments(params, bound) == (list(expected.args), expected.kwargs)


class Decorated:
    @staticmethod
    def _wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

        return wrapper

    @_wrap
    def run(self, n: int, *, tag: str = "t") -> int:
        return n


def test_decorated_methods_bind_by_their_wrapped_signature() -> None:
    assert bind(Decorated, "run", ["3"]) == ([3], {})
    assert bind(Decorated, "run", {"n": 1, "tag": "x"}) == ([1], {"tag": "x"})
    shown = r"Decorated\.run\(n: 'int'.*unexpected keyword argument 'z'"
    with pytest.raises(InvalidParams, match=shown):
        bind(Decorated, "run", {"n": 1, "z": 2})
