"""From an allow-list entry to a callable and its validated arguments.

Only class paths taken from allowed_jobs.yaml reach ``load_class``; the job
file contributes just the method name (already checked against
``allowed_methods``) and the params. Params bind to the method's signature
and each value is validated (and coerced, lax mode) against its type hint by
pydantic, so a job receives what its signature promises.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from runner.errors import InvalidParams, NotAllowed

Params = list[Any] | dict[str, Any]


def load_class(class_path: str) -> type:
    module_name, _, attr = class_path.rpartition(".")
    if not module_name or attr.startswith("_"):
        raise NotAllowed(f"{class_path!r} is not a module.Class path")
    module = importlib.import_module(module_name)
    cls = getattr(module, attr, None)
    if not inspect.isclass(cls):
        raise NotAllowed(f"{class_path} is not a class")
    return cls


def _callable_signature(cls: type, method: str) -> tuple[Callable[..., Any], inspect.Signature]:
    if method.startswith("_"):
        raise NotAllowed(f"method {method!r} is private")
    raw = inspect.getattr_static(cls, method, None)
    func = getattr(cls, method, None)
    if raw is None or func is None or not callable(func):
        raise NotAllowed(f"{cls.__name__} has no method {method!r}")
    sig = inspect.signature(func)
    if not isinstance(raw, staticmethod | classmethod):
        # A plain function looked up on the class still lists self.
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    return func, sig


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # unresolvable hints: validate nothing rather than refuse
        return {}


def _check(name: str, hint: Any, value: Any) -> Any:
    try:
        return TypeAdapter(hint).validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidParams(f"param {name!r}: {first['msg']} (got {value!r:.80})") from None


def bind(cls: type, method: str, params: Params) -> tuple[list[Any], dict[str, Any]]:
    """Validated (args, kwargs) for cls().method, or InvalidParams saying why."""
    func, sig = _callable_signature(cls, method)
    try:
        bound = sig.bind(*params) if isinstance(params, list) else sig.bind(**params)
    except TypeError as exc:
        raise InvalidParams(f"{cls.__name__}.{method}{sig}: {exc}") from None
    hints = _hints(func)
    for name, value in list(bound.arguments.items()):
        param = sig.parameters[name]
        if name not in hints:
            continue
        hint = hints[name]
        if param.kind is param.VAR_POSITIONAL:
            bound.arguments[name] = tuple(_check(name, hint, v) for v in value)
        elif param.kind is param.VAR_KEYWORD:
            bound.arguments[name] = {k: _check(k, hint, v) for k, v in value.items()}
        else:
            bound.arguments[name] = _check(name, hint, value)
    return list(bound.args), dict(bound.kwargs)


def check(class_path: str, method: str, params: Params) -> None:
    """Writer-side check: import the allowed class and bind, run nothing."""
    bind(load_class(class_path), method, params)
