"""Reading hyperparameters out of a configuration dict, with user-facing errors.

A configuration is a plain dict that may come from a YAML spec, a UI form, an API
``conf`` or a search space. Search spaces often produce floats (``64.0``) or numpy
scalars for integer hyperparameters, so integer keys accept any integral real number
and reject the rest. A missing key or a ``None`` value (JSON ``null``) means "use the
default". Every rejection is a :class:`~automl_core.errors.UserInputError` that names
the key, the value and what would be accepted.

Architecture builders registered by users can call these helpers too, so their keys
get the same coercion and the same kind of error message.

An architecture's size-like integers (``hidden``, ``channels``, ...) are declared as
``IntParam``: key, default and inclusive limits in one place, read by the builder and
registered with it (``register_architecture(..., params=...)``), so a search space's
values are held to the same maxima before an experiment is written (``check_value``,
``check_bound``). The maxima keep a typo such as ``hidden: 1e12`` from reaching torch,
which fails on it only when the model is built, with an allocator or overflow error.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from automl_core.errors import UserInputError

__all__ = [
    "IntParam",
    "check_bound",
    "check_value",
    "get_bool",
    "get_choice",
    "get_float",
    "get_int",
]


@dataclass(frozen=True)
class IntParam:
    """An integer hyperparameter of an architecture: its key, default and inclusive limits.

    ``maximum`` is what keeps one model within memory: no real use goes past it, and a
    value past it is refused with the bound in the message rather than failing in torch.
    """

    key: str
    default: int
    minimum: int
    maximum: int

    def read(self, config: Mapping[str, Any]) -> int:
        """``config[key]`` as ``get_int`` reads it, within the limits.

        Raises:
            UserInputError: as ``get_int``, naming the key and the limits.
        """
        return get_int(config, self.key, self.default, minimum=self.minimum, maximum=self.maximum)

    def merged(self, other: IntParam) -> IntParam:
        """The limits that accept what either declaration accepts (same key)."""
        return IntParam(
            self.key,
            self.default,
            min(self.minimum, other.minimum),
            max(self.maximum, other.maximum),
        )

    def check_maximum(self, value: Any) -> None:
        """Refuse a number past ``maximum`` (NaN included); anything else is left to
        ``read``, which needs the architecture.

        Raises:
            UserInputError: naming the key, the value and the maximum.
        """
        # Compared as given: int and float compare exactly and 10**400 is not converted.
        number = not isinstance(value, bool) and isinstance(value, numbers.Real)
        if number and not value <= self.maximum:
            raise UserInputError(
                f"The value of {self.key!r} is {value!r}, but must be <= {self.maximum}."
            )


def get_int(
    config: Mapping[str, Any],
    key: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """The integer at ``config[key]`` (``default`` when missing or None).

    Accepts ints, numpy integers and integral floats (``64.0`` -> 64).

    Raises:
        UserInputError: the value is a bool, a string, a non-integral number, or outside
            ``[minimum, maximum]``.
    """
    value = config.get(key)
    if value is None:
        return default
    # bool is an int subclass, but "hidden: true" is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserInputError(
            f"The value of {key!r} is {value!r}, but must be an integer (e.g. {default})."
        )
    if isinstance(value, numbers.Integral):
        result = int(value)
    else:
        as_float = float(value)
        if not math.isfinite(as_float) or not as_float.is_integer():
            raise UserInputError(
                f"The value of {key!r} is {value!r}, but must be a whole number "
                f"(e.g. {default}); round it in the search space (quniform/choice)."
            )
        result = int(as_float)
    _check_range(key, value, result, minimum, maximum)
    return result


def get_float(
    config: Mapping[str, Any],
    key: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float:
    """The finite float at ``config[key]`` (``default`` when missing or None).

    Raises:
        UserInputError: the value is not a real number, is NaN/infinite, or lies outside
            the given bounds.
    """
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserInputError(
            f"The value of {key!r} is {value!r}, but must be a number (e.g. {default})."
        )
    try:
        result = float(value)
    except OverflowError:  # an int past float range
        result = math.inf
    if not math.isfinite(result):
        raise UserInputError(f"The value of {key!r} is {value!r}, but must be a finite number.")
    low_bad = minimum is not None and (result < minimum if min_inclusive else result <= minimum)
    high_bad = maximum is not None and (result > maximum if max_inclusive else result >= maximum)
    if low_bad or high_bad:
        low = "" if minimum is None else ("[" if min_inclusive else "(") + f"{minimum}"
        high = "" if maximum is None else f"{maximum}" + ("]" if max_inclusive else ")")
        if minimum is not None and maximum is not None:
            wanted = f"in {low}, {high}"
        elif minimum is not None:
            wanted = f"{'>=' if min_inclusive else '>'} {minimum}"
        else:
            wanted = f"{'<=' if max_inclusive else '<'} {maximum}"
        raise UserInputError(f"The value of {key!r} is {value!r}, but must be {wanted}.")
    return result


def get_bool(config: Mapping[str, Any], key: str, default: bool) -> bool:
    """The boolean at ``config[key]`` (``default`` when missing or None).

    Accepts bools and the numbers 0 and 1 (a search space over ``[0, 1]`` yields those).

    Raises:
        UserInputError: any other value (strings such as "yes" included).
    """
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real) and float(value) in (0.0, 1.0):
        return bool(value)
    raise UserInputError(f"The value of {key!r} is {value!r}, but must be true or false.")


def get_choice(config: Mapping[str, Any], key: str, default: str, choices: Collection[str]) -> str:
    """The string at ``config[key]``, which must be one of ``choices``.

    Raises:
        UserInputError: the value is not one of ``choices``; the message lists them.
    """
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or value not in choices:
        names = ", ".join(repr(c) for c in sorted(choices))
        raise UserInputError(f"The value of {key!r} is {value!r}, but must be one of: {names}.")
    return value


def check_value(key: str, value: Any) -> None:
    """Read ``{key: value}`` as the trainer reads a configuration that sets only ``key``.

    This is the check that needs no data: the architecture's name, the batch size, the
    optimiser's keys, and the maxima of the integers architectures declare (``IntParam``:
    a ``hidden`` of 10**12 fits no built-in). A value refused here is refused whatever
    the other keys hold (an ``lr`` of -0.01 or ``"fast"``, a ``batch_size`` of 0, an
    unknown architecture or optimiser), so a search space that sets it would only make
    failed trials. What else a builder checks needs the data's shape (a ``kernel_size``
    wider than the input) and is checked per trial.

    Raises:
        UserInputError: as the trainer would raise for that value.
    """
    # Imported here: it imports torch, and this module is also imported without it.
    from automl_core.training.config import TrainingConfig

    # The architecture lookup imports the user's architecture modules.
    TrainingConfig.from_mapping({key: value})
    param = _declared(key)
    if param is not None:
        param.check_maximum(value)


def check_bound(key: str, bound: Any) -> None:
    """Refuse ``bound``, an end of a search-space range for ``key``, when ``key`` is an
    architecture's declared integer (``IntParam``) and ``bound`` is past its maximum.

    Raises:
        UserInputError: naming the key, the bound and the maximum.
    """
    param = _declared(key)
    if param is not None:
        param.check_maximum(bound)


def _declared(key: str) -> IntParam | None:
    # Imported here: the registry imports torch (see check_value).
    from automl_core.training.registry import declared_param

    return declared_param(key)


def _check_range(
    key: str, value: Any, result: int, minimum: int | None, maximum: int | None
) -> None:
    if minimum is not None and result < minimum:
        raise UserInputError(f"The value of {key!r} is {value!r}, but must be >= {minimum}.")
    if maximum is not None and result > maximum:
        raise UserInputError(f"The value of {key!r} is {value!r}, but must be <= {maximum}.")
