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
import sys
import typing
from collections.abc import Callable
from typing import Any

from runner.errors import InvalidParams, NotAllowed

Params = list[Any] | dict[str, Any]


def load_class(class_path: str) -> type:
    module_name, _, attr = class_path.rpartition(".")
    if not module_name or attr.startswith("_"):
        raise NotAllowed(f"{class_path!r} is not a module.Class path")
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
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


class Plan:
    """A method's signature and one validator per annotated parameter.

    Building TypeAdapters is the costly part of binding; a fork server builds
    the plan once so that every attempt it forks inherits it.
    """

    def __init__(self, cls: type, method: str) -> None:
        self.cls = cls
        self.method = method
        func, self.sig = _callable_signature(cls, method)
        hints = {n: h for n, h in _hints(func).items() if n in self.sig.parameters}
        self.adapters: dict[str, Any] = {}
        if hints:
            # Imported only when needed: a fork server without annotated jobs
            # stays small, and small processes fork faster.
            from pydantic import TypeAdapter

            self.adapters = {name: TypeAdapter(hint) for name, hint in hints.items()}

    def _check(self, name: str, shown: str, value: Any) -> Any:
        from pydantic import ValidationError

        try:
            return self.adapters[name].validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidParams(f"param {shown!r}: {first['msg']} (got {value!r:.80})") from None

    def bind(self, params: Params) -> tuple[list[Any], dict[str, Any]]:
        sig = self.sig
        if not params and not sig.parameters:
            return [], {}  # the common no-argument call skips Signature.bind
        try:
            bound = sig.bind(*params) if isinstance(params, list) else sig.bind(**params)
        except TypeError as exc:
            raise InvalidParams(f"{self.cls.__name__}.{self.method}{sig}: {exc}") from None
        for name, value in list(bound.arguments.items()):
            if name not in self.adapters:
                continue
            kind = sig.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                bound.arguments[name] = tuple(self._check(name, name, v) for v in value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                bound.arguments[name] = {k: self._check(name, k, v) for k, v in value.items()}
            else:
                bound.arguments[name] = self._check(name, name, value)
        return list(bound.args), dict(bound.kwargs)


_PLANS: dict[tuple[type, str], Plan] = {}


def plan(cls: type, method: str) -> Plan:
    key = (cls, method)
    found = _PLANS.get(key)
    if found is None:
        found = _PLANS[key] = Plan(cls, method)
    return found


def bind(cls: type, method: str, params: Params) -> tuple[list[Any], dict[str, Any]]:
    """Validated (args, kwargs) for cls().method, or InvalidParams saying why."""
    return plan(cls, method).bind(params)


def check(class_path: str, method: str, params: Params) -> None:
    """Writer-side check: import the allowed class and bind, run nothing."""
    bind(load_class(class_path), method, params)
