"""From an allow-list entry to a callable and its validated arguments.

Only class paths taken from allowed_jobs.yaml reach ``load_class``; the job
file contributes just the method name (already checked against
``allowed_methods``) and the params. Params bind to the method's signature
and each value is validated (and coerced, lax mode) against its type hint by
pydantic, so a job receives what its signature promises.

The fork server imports this module and builds each job's plan, so the
common case imports nothing: a plain function's parameters are read from
its code object, and binding follows ``inspect.Signature.bind`` (same
rules, same messages). ``inspect`` is used only for other callables
(decorated, partials, builtins) and to describe a signature in an error;
``typing`` and pydantic only when the method has annotated parameters.
"""

from __future__ import annotations

import sys

from jobspool.errors import InvalidParams, NotAllowed

TYPE_CHECKING = False  # typing.TYPE_CHECKING would import typing: see above
if TYPE_CHECKING:
    import inspect
    from collections.abc import Callable
    from typing import Any

    Params = list[Any] | dict[str, Any]

# Parameter kinds, numbered as in inspect.Parameter.
POSITIONAL_ONLY = 0
POSITIONAL_OR_KEYWORD = 1
VAR_POSITIONAL = 2
KEYWORD_ONLY = 3
VAR_KEYWORD = 4

_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08
_NO_DEFAULT = object()
# Python 3.12 started to say "keyword-only" in one of bind's messages.
_NAMES_KEYWORD_ONLY = sys.version_info >= (3, 12)


def load_class(class_path: str) -> type:
    module_name, _, attr = class_path.rpartition(".")
    if not module_name or attr.startswith("_"):
        raise NotAllowed(f"{class_path!r} is not a module.Class path")
    module = sys.modules.get(module_name)
    if module is None:
        __import__(module_name)
        module = sys.modules[module_name]
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise NotAllowed(f"{class_path} is not a class")
    return cls


class Param:
    """One parameter, as a caller passes it (kinds numbered as in inspect)."""

    __slots__ = ("default", "kind", "name")

    def __init__(self, name: str, kind: int, default: object = _NO_DEFAULT) -> None:
        self.name = name
        self.kind = kind
        self.default = default

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT and self.kind not in (VAR_POSITIONAL, VAR_KEYWORD)


def _static_lookup(cls: type, method: str) -> object:
    """The attribute as stored in the class (a staticmethod stays one)."""
    for klass in cls.__mro__:
        if method in klass.__dict__:
            return klass.__dict__[method]
    return None


def _code_params(func: Any) -> list[Param]:
    """A plain function's parameters, from its code object.

    co_varnames starts with the positional names, then the keyword-only
    ones, then the *args name and the **kwargs name when there are such.
    """
    code = func.__code__
    names = code.co_varnames
    npos, nkw = code.co_argcount, code.co_kwonlyargcount
    defaults = func.__defaults__ or ()
    first_default = npos - len(defaults)
    params = []
    for i, name in enumerate(names[:npos]):
        kind = POSITIONAL_ONLY if i < code.co_posonlyargcount else POSITIONAL_OR_KEYWORD
        default = defaults[i - first_default] if i >= first_default else _NO_DEFAULT
        params.append(Param(name, kind, default))
    at = npos + nkw
    if code.co_flags & _CO_VARARGS:
        params.append(Param(names[at], VAR_POSITIONAL))
        at += 1
    kwdefaults = func.__kwdefaults__ or {}
    for name in names[npos : npos + nkw]:
        params.append(Param(name, KEYWORD_ONLY, kwdefaults.get(name, _NO_DEFAULT)))
    if code.co_flags & _CO_VARKEYWORDS:
        params.append(Param(names[at], VAR_KEYWORD))
    return params


def _inspect_params(func: Callable[..., Any]) -> list[Param]:
    import inspect

    return [
        Param(p.name, int(p.kind), _NO_DEFAULT if p.default is p.empty else p.default)
        for p in inspect.signature(func).parameters.values()
    ]


class _Probe:
    def method(self) -> None:
        """Only its type is used."""


_FUNCTION = type(load_class)
_METHOD = type(_Probe().method)


def _is_plain(func: object) -> bool:
    """A function whose code object tells its whole signature."""
    return (
        type(func) is _FUNCTION
        and not hasattr(func, "__wrapped__")
        and not hasattr(func, "__signature__")
    )


def _method_params(cls: type, method: str) -> tuple[Callable[..., Any], list[Param], bool]:
    """The method as looked up on the class, its parameters as a caller
    passes them, and whether inspect would still list self for it."""
    if method.startswith("_"):
        raise NotAllowed(f"method {method!r} is private")
    raw = _static_lookup(cls, method)
    func = getattr(cls, method, None)
    if raw is None or func is None or not callable(func):
        raise NotAllowed(f"{cls.__name__} has no method {method!r}")
    bound = type(func) is _METHOD  # a classmethod, bound to the class
    target = func.__func__ if bound else func
    if _is_plain(target):
        params = _code_params(target)
        # self (a plain function looked up on the class) or cls (a classmethod)
        drop = bound or not isinstance(raw, staticmethod)
    else:
        params = _inspect_params(func)  # which leaves out a bound method's first
        drop = not bound and not isinstance(raw, staticmethod)
    drop = drop and bool(params) and params[0].kind in (POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD)
    return func, params[1:] if drop else params, drop and not bound


def _hints(func: Callable[..., Any], names: set[str]) -> dict[str, Any]:
    """The type hints of the named parameters; typing only if there are any."""
    target = getattr(func, "__func__", func)
    annotations = getattr(target, "__annotations__", None) or {}
    if not names.intersection(annotations):
        return {}
    import typing

    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable hints: validate nothing rather than refuse
        return {}
    return {n: h for n, h in hints.items() if n in names}


def bind_arguments(params: list[Param], args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Name -> value, by the rules of inspect.Signature.bind; TypeError if
    the call would not fit. Values of *args and **kwargs parameters are a
    tuple and a dict."""
    kwargs = dict(kwargs)
    bound: dict[str, Any] = {}
    rest = iter(params)
    pending: list[Param] = []
    for at, value in enumerate(args):
        param = next(rest, None)
        if param is None or param.kind in (KEYWORD_ONLY, VAR_KEYWORD):
            raise TypeError("too many positional arguments")
        if param.kind == VAR_POSITIONAL:
            bound[param.name] = tuple(args[at:])
            break
        if param.name in kwargs and param.kind != POSITIONAL_ONLY:
            raise TypeError(f"multiple values for argument {param.name!r}")
        bound[param.name] = value
    else:
        pending = _params_left(rest, kwargs)
    var_keyword = None
    for param in [*pending, *rest]:
        if param.kind == VAR_KEYWORD:
            var_keyword = param
        elif param.kind != VAR_POSITIONAL:
            _bind_keyword(param, kwargs, bound)
    if kwargs:
        if var_keyword is None:
            raise TypeError(f"got an unexpected keyword argument {next(iter(kwargs))!r}")
        bound[var_keyword.name] = kwargs
    return bound


def _params_left(rest: Any, kwargs: dict[str, Any]) -> list[Param]:
    """Positional arguments ran out: check the next parameter as bind does."""
    param = next(rest, None)
    if param is None or param.kind == VAR_POSITIONAL:
        return []
    if param.name in kwargs and param.kind == POSITIONAL_ONLY:
        raise TypeError(f"{param.name!r} parameter is positional only, but was passed as a keyword")
    if param.name not in kwargs and param.required:
        kind = " keyword-only" if param.kind == KEYWORD_ONLY and _NAMES_KEYWORD_ONLY else ""
        raise TypeError(f"missing a required{kind} argument: {param.name!r}")
    return [param]


def _bind_keyword(param: Param, kwargs: dict[str, Any], bound: dict[str, Any]) -> None:
    if param.name not in kwargs:
        if param.required:
            raise TypeError(f"missing a required argument: {param.name!r}")
        return
    if param.kind == POSITIONAL_ONLY:
        raise TypeError(f"{param.name!r} parameter is positional only, but was passed as a keyword")
    bound[param.name] = kwargs.pop(param.name)


def call_arguments(params: list[Param], bound: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """(args, kwargs) for bound, as BoundArguments.args and .kwargs split them."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    positional = True
    for param in params:
        given = param.name in bound
        if positional and param.kind in (POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD, VAR_POSITIONAL):
            # Positional until the first parameter left out; the rest by name.
            positional = given
            if given and param.kind == VAR_POSITIONAL:
                args.extend(bound[param.name])
            elif given:
                args.append(bound[param.name])
            continue
        positional = False
        if given and param.kind == VAR_KEYWORD:
            kwargs.update(bound[param.name])
        elif given:
            kwargs[param.name] = bound[param.name]
    return args, kwargs


# Hints whose exact-type values pydantic passes through unchanged (lax mode).
_EXACT = (str, int, float, bool)


class Plan:
    """A method's parameters and one validator per annotated parameter.

    Building TypeAdapters is the costly part of binding; a fork server builds
    the plan once so that every attempt it forks inherits it.
    """

    def __init__(self, cls: type, method: str) -> None:
        self.cls = cls
        self.method = method
        self.func, self.params, self._lists_self = _method_params(cls, method)
        self.kinds = {p.name: p.kind for p in self.params}
        hints = _hints(self.func, set(self.kinds))
        # A value whose type is exactly its plain hint is what pydantic would
        # return (the same object): no adapter call, so an attempt's process
        # does not run pydantic's code (and fault in its pages) to bind it.
        self.exact = {name: hint for name, hint in hints.items() if hint in _EXACT}
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

    def signature(self) -> inspect.Signature:
        """The signature as a caller sees it (no self); ValueError or
        TypeError where inspect cannot tell it."""
        import inspect

        sig = inspect.signature(self.func)
        if self._lists_self:
            sig = sig.replace(parameters=list(sig.parameters.values())[1:])
        return sig

    def signature_text(self) -> str:
        """The signature as written, string annotations unquoted (postponed
        annotations), for people: ``(path: str, rows: int = 100)``."""
        sig = self.signature()
        params = [p.replace(annotation=_unquoted(p.annotation)) for p in sig.parameters.values()]
        shown = sig.replace(parameters=params, return_annotation=_unquoted(sig.return_annotation))
        return str(shown)

    def _refuse(self, exc: TypeError) -> InvalidParams:
        try:
            shown = str(self.signature())
        except (TypeError, ValueError):
            shown = "(...)"
        return InvalidParams(f"{self.cls.__name__}.{self.method}{shown}: {exc}")

    def bind(self, params: Params) -> tuple[list[Any], dict[str, Any]]:
        if not params and not self.params:
            return [], {}  # the common no-argument call
        args, kwargs = (params, {}) if isinstance(params, list) else ([], params)
        try:
            bound = bind_arguments(self.params, args, kwargs)
        except TypeError as exc:
            raise self._refuse(exc) from None
        for name, value in bound.items():
            if name not in self.adapters or type(value) is self.exact.get(name):
                continue
            kind = self.kinds[name]
            if kind == VAR_POSITIONAL:
                bound[name] = tuple(self._check(name, name, v) for v in value)
            elif kind == VAR_KEYWORD:
                bound[name] = {k: self._check(name, k, v) for k, v in value.items()}
            else:
                bound[name] = self._check(name, name, value)
        return call_arguments(self.params, bound)


_PLANS: dict[tuple[type, str], Plan] = {}


class _Shown:
    """An annotation kept as text (postponed), shown without quotes."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _unquoted(annotation: object) -> object:
    return _Shown(annotation) if isinstance(annotation, str) else annotation


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
