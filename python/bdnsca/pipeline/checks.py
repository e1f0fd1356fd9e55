"""Value checks of the experiment file beyond unknown keys: each setting's type against its
settings object's field (``max_steps = "x"`` is named before anything compares it with a number)
and the pipeline's own keys (``rows``, ``max_scenarios``, ``k``, ``samples``, ...). They raise
ValueError; :mod:`.spec` turns it into one line naming the file and the key."""

from __future__ import annotations

from typing import Any


def matches(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a field's type (ints for floats, never bools for numbers);
    types it cannot judge pass, for the settings object's own checks to see."""
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return isinstance(value, list) and all(any(matches(v, a) for a in args) or not args for v in value)
    return True


def type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def check_types(cls: type, settings: dict[str, Any]) -> None:
    """A value of the wrong type (``max_steps = "x"``, ``learning_rate = "x"``) is an error naming
    the key, before the settings object's own checks compare it with a number."""
    import typing

    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved: no type check
        return
    for name, value in settings.items():
        if name in hints and not matches(value, hints[name]):
            raise ValueError(f"{name} must be {type_name(hints[name])}, got {value!r}")


def positive_int(where: str, value: Any, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{where} must be a whole number >= {least}, got {value!r}")
    return value


def check_own(step: str, settings: dict[str, Any]) -> None:
    """The pipeline's own keys of ``[steps.STEP]`` (``rows``, ``max_scenarios``, ``k``, ...)."""
    if step == "sft" and "rows" in settings:
        positive_int("rows", settings["rows"])
    if step == "eval":
        for key in ("max_scenarios", "k"):
            if key in settings:
                positive_int(key, settings[key])
    if step == "preferences":
        if "scenarios" in settings:
            positive_int("scenarios", settings["scenarios"])
        if "samples" in settings:
            positive_int("samples (answers per prompt to pair)", settings["samples"], 2)
        t = settings.get("temperature", 0.8)
        if isinstance(t, bool) or not isinstance(t, int | float) or not t > 0:
            raise ValueError(f"temperature must be a number > 0 (samples must differ), got {t!r}")
