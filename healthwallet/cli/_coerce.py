"""Parameter values coerced without pydantic, so a command does not pay for it at start-up.

typer 0.29 (pinned in pyproject.toml) turns every non-flag parameter value into its Python type
through a pydantic ``TypeAdapter``; importing pydantic for that costs more than importing typer
itself. The parameters this CLI declares (text, paths, integers, numbers, flags, choices, and
lists of them) need none of it: this module coerces them with typer's own path and choice
checks, giving the same values and messages. Any other annotation (datetime, tuples, ranges,
``parser=``) still goes through typer's pydantic path, and tests/cli/test_startup.py fails so
that the new parameter is either handled here or given a plainer type. See
docs/adr/0016-startup-without-pydantic.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from typer import core
from typer._click.exceptions import BadParameter
from typer._coercion import FileRuntimeParam, RuntimeParam, TypeDescriptor, build_runtime_param
from typer._param_types import (
    choice_coercion_annotation,
    coerce_cli_choice,
    coerce_cli_path,
    routes_to_path,
)

Leaf = Callable[[Any, Any, Any], Any]  # (value, param, ctx) -> coerced value

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off", ""})


def _text(value: Any, param: Any, ctx: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(sys.getfilesystemencoding(), "surrogateescape")
    return str(value)


def _flag(value: Any, param: Any, ctx: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise BadParameter("Input should be a valid boolean", ctx=ctx, param=param)


def _number(kind: type[Any]) -> Leaf:
    word, article = ("integer", "an") if kind is int else ("number", "a")

    def parse(value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, kind) and not isinstance(value, bool):
            return value
        try:
            number = float(value)
            if kind is int:
                text = str(value).strip()
                number = int(text) if text.lstrip("+-").isdigit() else _whole(number)
        except (ValueError, OverflowError):
            raise BadParameter(
                f"Input should be a valid {word}, unable to parse string as {article} {word}",
                ctx=ctx,
                param=param,
            ) from None
        return number

    return parse


def _whole(number: float) -> int:
    if not number.is_integer():
        raise ValueError("not a whole number")
    return int(number)


def _path(descriptor: TypeDescriptor, annotation: Any) -> Leaf:
    info = descriptor.parameter_info
    path_type: type[Any] | None = info.path_type
    if path_type is None and isinstance(annotation, type) and issubclass(annotation, Path):
        path_type = annotation

    def parse(value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(path_type, type) and issubclass(path_type, Path):
            value = path_type(os.fsdecode(value))  # what pydantic's Path validation does
        return coerce_cli_path(value, info, path_type=path_type, param=param, ctx=ctx)

    return parse


def _choice(choices: tuple[Any, ...], case_sensitive: bool) -> Leaf:
    def parse(value: Any, param: Any, ctx: Any) -> Any:
        try:
            return coerce_cli_choice(value, choices=choices, case_sensitive=case_sensitive, ctx=ctx)
        except ValueError as exc:
            raise BadParameter(f"Value error, {exc}", ctx=ctx, param=param) from None

    return parse


def _leaf(descriptor: TypeDescriptor, annotation: Any) -> Leaf | None:
    """The coercion of one value of ``annotation``, or None when only typer's path knows it."""
    info = descriptor.parameter_info
    if info.parser is not None or info.min is not None or info.max is not None:
        return None
    choice = choice_coercion_annotation(annotation, info)
    if choice is not None:
        return _choice(*choice)
    if annotation is str:
        return _text
    if annotation is bool:
        return _flag
    if annotation in (int, float):
        return _number(annotation)
    if routes_to_path(annotation, info):
        return _path(descriptor, annotation)
    return None


@dataclass(frozen=True)
class LeanRuntimeParam(RuntimeParam):
    """Coercion of a plain value, or of each item of a list, without a TypeAdapter."""

    leaf: Leaf
    many: bool

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        if not self.many:
            return self.leaf(value, param, ctx)
        items = value if isinstance(value, list | tuple) else [value]
        return [self.leaf(item, param, ctx) for item in items]


def lean_runtime_param(descriptor: TypeDescriptor) -> RuntimeParam | None:
    """A pydantic-free coercion for ``descriptor``, or None if it needs typer's own."""
    annotation: Any = descriptor.annotation
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None:
        if get_origin(annotation) is tuple:
            return None
        return FileRuntimeParam(
            annotation=annotation, parameter_info=info, file_annotation=descriptor.file_annotation
        )
    many = get_origin(annotation) is list
    if many:
        (annotation,) = get_args(annotation)
    leaf = _leaf(descriptor, annotation)
    if leaf is None:
        return None
    return LeanRuntimeParam(
        annotation=descriptor.annotation, parameter_info=info, leaf=leaf, many=many
    )


def _get_runtime_param(self: Any) -> RuntimeParam:
    if self._runtime_param is None:
        descriptor = self.type_descriptor
        self._runtime_param = lean_runtime_param(descriptor) or build_runtime_param(descriptor)
    return self._runtime_param  # type: ignore[no-any-return]


def install() -> None:
    """Coerce values here first (idempotent); called before the app parses a command line."""
    core._TyperParameter.get_runtime_param = _get_runtime_param  # type: ignore[method-assign]
