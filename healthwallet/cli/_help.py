"""Help text in the conventions people know from git and gh: `FILE...`, `--out PATH`.

typer 0.29 (pinned in pyproject.toml) renders internal type names in help (`<str>`,
`<list[str]>`, `{FILE...}...`). These overrides of its parameter classes show upper-case
metavars instead: the one a parameter names, else one derived from its type.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

from typer import core

_TYPE_WORDS = {str: "TEXT", int: "INTEGER", float: "NUMBER", bool: "", "Path": "PATH"}


def _type_word(annotation: Any) -> str:
    """TEXT, PATH, INTEGER … for an annotation (the element type of a list)."""
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation)
    if getattr(annotation, "__name__", "") == "Path":
        return "PATH"
    return _TYPE_WORDS.get(annotation, "VALUE")


def _display_type(self: Any, ctx: Any) -> str:
    desc = self.type_descriptor
    if desc.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
    return _type_word(desc.annotation)


def _argument_type(self: Any, ctx: Any) -> str | None:
    # The argument's name (or metavar) already says what it is: `FILE`, not `FILE <path>`.
    return None


def _argument_usage(self: Any) -> str:
    name = str(self.display_name_raw).upper()
    if self.nargs != 1:
        name += "..."
    return name if self.required else f"[{name}]"


def _argument_name(self: Any) -> str:
    name = str(self.display_name_raw).upper()
    return name + "..." if self.nargs != 1 else name


def _short_help(self: Any, limit: int = 45) -> str:
    # The first paragraph of the docstring, whole: the listing wraps it rather than cutting
    # it mid-sentence with "...".
    text = self.short_help or self.help or ""
    return " ".join(text.split("\n\n", 1)[0].split())


def install() -> None:
    """Apply the overrides (idempotent); called once before the app builds its commands."""
    core._TyperParameter.display_type = _display_type  # type: ignore[method-assign]
    core.TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign]
    core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
    core.TyperArgument._rich_display_name = _argument_name  # type: ignore[method-assign]
    core.TyperCommand.get_short_help_str = _short_help  # type: ignore[method-assign]
    core.TyperGroup.get_short_help_str = _short_help  # type: ignore[method-assign]
