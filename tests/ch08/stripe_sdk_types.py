"""Stripe's types as the stripe SDK declares them, used as a check.

Chapter 8's Stripe stand-in (`tests/ch08/stripe_server.py`) must answer
what Stripe answers and take what Stripe takes. The official SDK is
generated from Stripe's OpenAPI description: each call names its method
and path, its parameters are a TypedDict, and each resource class
annotates its fields (a field not `Optional` is always sent, never
null; where it writes `Literal[...] | str`, the literal's words are the
ones Stripe documents). `sends` checks that a call uses a method and path;
`parameter_problems` checks a form body or query against a call's
parameters; `answer_problems` checks a JSON answer against a resource
class, naming each problem by its place (`$.lines.data[0].period`).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import typing
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

from stripe import ListObject, StripeObject
from stripe._stripe_object import UntypedStripeObject
from typing_extensions import is_typeddict

KEY_PART = re.compile(r"[^\[\]]+")  # items[0][price]: items, 0, price


@cache
def _namespace(module_name: str) -> dict[str, Any]:
    """The module's names, with those it imports only for type checking."""
    module = importlib.import_module(module_name)
    names = dict(vars(module))
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.level == 0):
            source = importlib.import_module(node.module)
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(source,
                                                            alias.name)
    return names


def type_hints(declared: object) -> dict[str, Any]:
    """The public fields of a class or TypedDict, or a call's arguments
    and `return`, with the SDK's forward references resolved."""
    names = (_namespace("stripe._request_options")
             | _namespace("stripe._stripe_object")
             | _namespace(declared.__module__))
    hints = typing.get_type_hints(declared, globalns=names)
    return {name: kind for name, kind in hints.items()
            if not name.startswith("_")
            and get_origin(kind) is not typing.ClassVar}


def optional(kind: Any) -> bool:
    return get_origin(kind) is Union and type(None) in get_args(kind)


def arms(kind: Any) -> list[Any]:
    """A union's types but None; `str` beside a literal is left out: the
    SDK adds it for values Stripe may add later, not for any text."""
    kinds = [arm for arm in get_args(kind) if arm is not type(None)]
    if any(get_origin(arm) is Literal for arm in kinds):
        kinds = [arm for arm in kinds if arm is not str]
    return kinds


def without_none(kind: Any) -> Any:
    """`Optional[X]` -> `X`."""
    if not optional(kind):
        return kind
    [arm] = [arm for arm in get_args(kind) if arm is not type(None)]
    return arm


def sends(call: Callable[..., object], method: str, template: str) -> bool:
    """Whether the SDK's call requests `method` on `template`."""
    source = inspect.getsource(call)
    return (f'"{method.lower()}",' in source
            and re.search(rf'"{re.escape(template)}"[.,)]', source)
            is not None)


def params_of(call: Callable[..., object]) -> Any:
    return without_none(type_hints(call)["params"])


def answer_of(call: Callable[..., object]) -> Any:
    return type_hints(call)["return"]


# --- answers ----------------------------------------------------------
def answer_problems(value: object, kind: Any,
                    where: str = "$") -> list[str]:
    """Where `value`, a JSON answer, is not of the SDK's type `kind`."""
    if kind is Any:
        return []
    if get_origin(kind) is Union:
        return _union_problems(value, kind, where)
    if value is None:
        return [f"{where}: null, which {_name(kind)} is never"]
    origin = get_origin(kind)
    if origin is Literal:
        return ([] if value in get_args(kind)
                else [f"{where}: {value!r} is not {_name(kind)}"])
    if origin is list:
        return _list_problems(value, get_args(kind)[0], where)
    if origin in (dict, UntypedStripeObject):
        return _map_problems(value, get_args(kind)[-1], where)
    if origin is ListObject:
        return _list_object_problems(value, get_args(kind)[0], where)
    if isinstance(kind, type) and issubclass(kind, StripeObject):
        return _object_problems(value, kind, where)
    return _scalar_problems(value, kind, where)


def _union_problems(value: object, kind: Any, where: str) -> list[str]:
    if value is None:
        return [] if optional(kind) else [f"{where}: null, never allowed"]
    tries = [answer_problems(value, arm, where) for arm in arms(kind)]
    return [] if [] in tries else min(tries, key=len)


def _list_problems(value: object, item: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{where}: {value!r} is not a list"]
    return [problem for index, element in enumerate(value)
            for problem in answer_problems(element, item,
                                           f"{where}[{index}]")]


def _map_problems(value: object, item: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: {value!r} is not an object"]
    return [problem for key, element in value.items()
            for problem in answer_problems(element, item, f"{where}.{key}")]


def _list_object_problems(value: object, item: Any,
                          where: str) -> list[str]:
    fields = {"object": Literal["list"], "data": list[item],
              "has_more": bool, "url": str}
    return _fields_problems(value, fields, "a list", where)


def _object_problems(value: object, kind: type[StripeObject],
                     where: str) -> list[str]:
    return _fields_problems(value, type_hints(kind), kind.__qualname__,
                            where)


def _fields_problems(value: object, fields: dict[str, Any], name: str,
                     where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: {value!r} is not an object"]
    problems = [f"{where}.{key}: not a field of {name}"
                for key in value if key not in fields]
    for field, kind in fields.items():
        if field in value:
            problems += answer_problems(value[field], kind,
                                        f"{where}.{field}")
        elif not optional(kind):
            problems.append(f"{where}.{field}: missing from {name}")
    return problems


def _scalar_problems(value: object, kind: Any, where: str) -> list[str]:
    fits = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(
            value, bool),
        str: isinstance(value, str),
        Decimal: isinstance(value, str) and _decimal(value),  # as text
    }
    if kind not in fits:
        return [f"{where}: {_name(kind)} is a type this check lacks"]
    return [] if fits[kind] else [f"{where}: {value!r} is not "
                                  f"{_name(kind)}"]


# --- parameters -------------------------------------------------------
def parameter_problems(pairs: list[tuple[str, str]],
                       params: Any) -> list[str]:
    """Where a form body or query (`items[0][price]=price_1`) leaves
    the call's parameters, or gives a value its type cannot take."""
    return [problem for key, text in pairs
            for problem in _key_problems(KEY_PART.findall(key), text,
                                         params, key)]


def _key_problems(parts: list[str], text: str, kind: Any,
                  key: str) -> list[str]:
    if get_origin(kind) is Union:
        tries = [_key_problems(parts, text, arm, key)
                 for arm in arms(kind)]
        return [] if [] in tries else min(tries, key=len)
    if not parts:
        return _text_problems(text, kind, key)
    part, rest = parts[0], parts[1:]
    origin = get_origin(kind)
    if is_typeddict(kind):
        fields = type_hints(kind)
        if part not in fields:
            return [f"{key}: {part!r} is not a parameter of "
                    f"{kind.__name__}"]
        return _key_problems(rest, text, fields[part], key)
    if origin is list and part.isdigit():
        return _key_problems(rest, text, get_args(kind)[0], key)
    if origin in (dict, UntypedStripeObject):
        return _key_problems(rest, text, get_args(kind)[-1], key)
    return [f"{key}: {part!r} goes inside {_name(kind)}"]


def _text_problems(text: str, kind: Any, key: str) -> list[str]:
    """A form value against a leaf type: the words a literal allows, a
    number where a number is due."""
    fits = {str: True, Decimal: _decimal(text),
            int: re.fullmatch(r"-?[0-9]+", text) is not None,
            bool: text in ("true", "false"), float: _decimal(text)}
    if get_origin(kind) is Literal:
        allowed = text in get_args(kind)
    else:
        allowed = fits.get(kind, False)
    return [] if allowed else [f"{key}: {text!r} is not {_name(kind)}"]


def _decimal(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


def _name(kind: Any) -> str:
    if get_origin(kind) is Literal:
        return f"one of {get_args(kind)}"
    return getattr(kind, "__qualname__", None) or str(kind).replace(
        "typing.", "")
