"""Typer command-line values of plain types (str, Path, bool, lists of str/Path) without pydantic.

Typer releases that coerce values through pydantic build a TypeAdapter for every parameter the
first time a command parses its arguments, flags included: importing pydantic and building a
dozen adapters is 0.1-0.2 s of a command's start-up, before it does anything. For these types
that work decides nothing: every argument string is a valid str; a Path's checks are Typer's
own `coerce_cli_path`, called here the same way; a flag's value is already a bool. So
`use_plain_params(command)` gives such parameters a plain coercion, and any value it does not
expect (a flag's value from an environment variable, say) goes to Typer's own coercion, built
then. Other types (int, Enum, a parser, a file type), and every parameter on a Typer without
this machinery, are left alone. tests/test_plain_params.py parses command lines both ways.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

_TYPERS = object()  # "not mine": hand the value to Typer's own coercion


def _runtime_param_class():
    """A Typer RuntimeParam coercing with `convert(value, param, ctx)`; None on a Typer that
    has no RuntimeParam (one that parses with click)."""
    global _PlainParam
    if _PlainParam is not None:
        return _PlainParam
    try:
        from dataclasses import dataclass

        from typer._coercion import RuntimeParam, build_runtime_param
    except ImportError:
        return None
    if not hasattr(RuntimeParam, "coerce") or not hasattr(RuntimeParam, "_coerce_value"):
        return None

    @dataclass(frozen=True)
    class PlainParam(RuntimeParam):
        convert: Any = None
        many: bool = False
        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.many:
                items = list(value) if isinstance(value, (list, tuple)) else [value]
                out = [self.convert(item, param, ctx) for item in items]
                if not any(v is _TYPERS for v in out):
                    return out
            else:
                out = self.convert(value, param, ctx)
                if out is not _TYPERS:
                    return out
            return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    _PlainParam = PlainParam
    return PlainParam


_PlainParam = None


def _to_str(value: Any, _param: Any, _ctx: Any) -> Any:
    return value if type(value) is str else _TYPERS


def _to_bool(value: Any, _param: Any, _ctx: Any) -> Any:
    return value if type(value) is bool else _TYPERS


def _path_converter(parameter_info: Any):
    from typer._param_types import coerce_cli_path

    def to_path(value: Any, param: Any, ctx: Any) -> Any:
        if type(value) is not str:
            return _TYPERS
        # Typer's own checks (exists, readable, dir_okay...), given a Path so it needs no pydantic
        return coerce_cli_path(Path(value), parameter_info, path_type=Path, param=param, ctx=ctx)

    return to_path


def _plain_coercion(descriptor: Any) -> tuple[Any, bool] | None:
    """(convert, many) for a parameter of type str, Path, bool, list[str] or list[Path]; else None."""
    info = descriptor.parameter_info
    if (
        descriptor.file_annotation is not None
        or getattr(info, "parser", None) is not None
        or getattr(info, "click_type", None) is not None
    ):
        return None
    annotation, many = descriptor.annotation, False
    if get_origin(annotation) is list and len(get_args(annotation)) == 1:
        annotation, many = get_args(annotation)[0], True
    if annotation is bool and not many:
        return _to_bool, False
    if (
        annotation is str
        and getattr(info, "path_type", None) is None
        and not getattr(info, "resolve_path", False)
        and not getattr(info, "allow_dash", False)
    ):
        return _to_str, many
    if annotation is Path and getattr(info, "path_type", None) in (None, Path):
        return _path_converter(info), many
    return None


def _patch(params: Any) -> None:
    plain = _runtime_param_class()
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None:
            continue
        found = _plain_coercion(descriptor)
        if found is not None:
            convert, many = found
            param._runtime_param = plain(
                parameter_info=descriptor.parameter_info,
                annotation=descriptor.annotation,
                convert=convert,
                many=many,
                descriptor=descriptor,
            )


def use_plain_params(command: Any) -> Any:
    """Make the command coerce its plain parameters plainly (see the module docstring). It
    happens when it parses: Typer adds parameters (--help, completion) after making it."""
    if _runtime_param_class() is None or getattr(command, "_plain_params", False):
        return command
    parse_args = command.parse_args

    def parse_plainly(ctx: Any, args: list[str]) -> Any:
        _patch(command.get_params(ctx))
        return parse_args(ctx, args)

    command.parse_args = parse_plainly
    command._plain_params = True
    return command
