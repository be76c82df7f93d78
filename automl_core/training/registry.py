"""The architecture registry: names to model builders.

An architecture is chosen by the string ``config["architecture"]``. That string is only
ever a key into this registry: it never becomes an import path, an ``eval`` or SQL, so a
value from a UI form or an API ``conf`` can select a model but cannot run code.

Built-ins ("mlp", "cnn1d", "cnn2d", "resnet") live in ``architectures.py`` and are
registered the first time the registry is consulted. Users add their own with::

    @register_architecture("my_net", params=(IntParam("width", 64, 1, 4096),))
    def build(config, input_shape, num_classes):
        return MyNet(...)

A builder declares the size-like integers it reads (``IntParam``: key, default, limits)
with ``params=``; a search space's values for those keys are then held to the maxima
before an experiment is written. A value is refused only past the maximum of every
architecture that declares the key, so an architecture that wants a wider ``hidden`` than the
built-ins declares its own.

The modules that define such builders are named in ``AUTOML_ARCHITECTURE_MODULES``; every
lookup here imports them first (``automl_core.training.user_modules``), so training, predict,
export and every Airflow task find a user's architecture in any process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from automl_core.errors import UserInputError
from automl_core.training.params import IntParam

__all__ = [
    "Builder",
    "DEFAULT_ARCHITECTURE",
    "architecture_name",
    "architecture_names",
    "build_architecture",
    "build_model",
    "check_input_shape",
    "declared_param",
    "get_builder",
    "register_architecture",
    "unregister_architecture",
]

Builder = Callable[[Mapping[str, Any], tuple[int, ...], int], nn.Module]

#: Used when a configuration names no architecture.
DEFAULT_ARCHITECTURE = "mlp"

_BUILDERS: dict[str, Builder] = {}
_PARAMS: dict[str, tuple[IntParam, ...]] = {}
_LOCK = threading.Lock()
_builtins_loaded = False


def _ensure_builtins() -> None:
    """Register the built-ins (once) and import the user's architecture modules."""
    # Imported lazily because architectures.py imports this module for the decorator.
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        from automl_core.training import architectures  # noqa: F401
    from automl_core.training.user_modules import import_architecture_modules

    import_architecture_modules()


def register_architecture(
    name: str, *, replace: bool = False, params: Sequence[IntParam] = ()
) -> Callable[[Builder], Builder]:
    """A decorator that registers ``builder(config, input_shape, num_classes) -> nn.Module``.

    The builder receives the whole configuration (it reads its own keys, ignoring the
    rest), the per-row feature shape and the number of classes, and returns a module
    mapping a float32 batch ``[n, *input_shape]`` to logits ``[n, num_classes]``.
    It should raise :class:`UserInputError` for hyperparameters or shapes it cannot take.
    ``params`` declares the integers it reads with their limits (it should read them
    with ``IntParam.read``); search spaces are checked against them.

    Raises:
        ValueError: ``name`` is empty or not a string, or is already registered and
            ``replace`` is false.
        TypeError: an entry of ``params`` is not an ``IntParam``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"An architecture name must be a non-empty string, not {name!r}.")
    declared = tuple(params)
    for param in declared:
        if not isinstance(param, IntParam):
            raise TypeError(f"The params of {name!r} must be IntParam, not {param!r}.")

    def decorator(builder: Builder) -> Builder:
        if not callable(builder):
            raise TypeError(f"The builder for {name!r} must be callable, not {builder!r}.")
        _ensure_builtins()
        with _LOCK:
            if name in _BUILDERS and not replace:
                raise ValueError(
                    f"The architecture {name!r} is already registered; pick another name "
                    "or pass replace=True to override it."
                )
            _BUILDERS[name] = builder
            _PARAMS[name] = declared
        return builder

    return decorator


def unregister_architecture(name: str) -> None:
    """Remove ``name`` from the registry (for tests and plugins that clean up).

    Raises:
        KeyError: ``name`` is not registered.
    """
    with _LOCK:
        del _BUILDERS[name]
        _PARAMS.pop(name, None)


def architecture_names() -> list[str]:
    """The registered architecture names, sorted."""
    _ensure_builtins()
    with _LOCK:
        return sorted(_BUILDERS)


def declared_param(key: str) -> IntParam | None:
    """The limits the registered architectures declare for ``key``, merged so that a value
    any of them accepts passes; None when none declares it."""
    _ensure_builtins()
    with _LOCK:
        found = [p for params in _PARAMS.values() for p in params if p.key == key]
    if not found:
        return None
    merged = found[0]
    for param in found[1:]:
        merged = merged.merged(param)
    return merged


def architecture_name(config: Mapping[str, Any]) -> str:
    """The architecture a configuration asks for (``DEFAULT_ARCHITECTURE`` if none).

    Raises:
        UserInputError: the name is not a registered architecture; the message lists
            the registered names.
    """
    name = config.get("architecture")
    if name is None:
        name = DEFAULT_ARCHITECTURE
    get_builder(name)
    return str(name)


def get_builder(name: Any) -> Builder:
    """The builder registered under ``name``.

    Raises:
        UserInputError: no architecture has that name (the message lists the names), or
            a module ``AUTOML_ARCHITECTURE_MODULES`` names cannot be imported.
    """
    _ensure_builtins()
    with _LOCK:
        builder = _BUILDERS.get(name) if isinstance(name, str) else None
        known = sorted(_BUILDERS)
    if builder is None:
        raise UserInputError(
            f"The value of 'architecture' is {name!r}, which is not a registered "
            f"architecture. Use one of: {', '.join(known)} (or register your own with "
            "automl_core.training.register_architecture)."
        )
    return builder


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive ints (the per-row feature shape).

    Raises:
        UserInputError: empty, or holding anything but positive integers.
    """
    try:
        shape = tuple(int(d) for d in input_shape)
        ok = len(shape) > 0 and all(
            d > 0 and d == s for d, s in zip(shape, input_shape, strict=True)
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UserInputError(
            f"The input shape {input_shape!r} is not valid: give the shape of one row's "
            "features as positive integers, e.g. [64] or [3, 32, 32]."
        )
    return shape


def build_model(
    config: Mapping[str, Any], input_shape: Sequence[int], num_classes: int
) -> nn.Module:
    """A freshly initialised model for ``config`` (on the current default torch device).

    Initialisation draws from torch's global CPU generator: seed it first (the engine
    does) for reproducible weights.

    Raises:
        UserInputError: unknown architecture, a bad hyperparameter, an input shape the
            architecture cannot take, or ``num_classes`` < 2.
        TypeError: a (user-registered) builder returned something other than a module.
    """
    return build_architecture(architecture_name(config), config, input_shape, num_classes)


def build_architecture(
    name: str, params: Mapping[str, Any], input_shape: Sequence[int], num_classes: int
) -> nn.Module:
    """A freshly initialised model of the registered architecture ``name``, its builder
    reading ``params`` (a configuration whose name is already read, e.g.
    ``TrainingConfig.params``).

    Raises:
        As :func:`build_model`.
    """
    builder = get_builder(name)
    shape = check_input_shape(input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise UserInputError(
            f"The number of classes is {num_classes!r}, but a classifier needs at least 2; "
            "check the dataset's label column."
        )
    model = builder(params, shape, num_classes)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"The builder for {name!r} returned {type(model).__name__}, not a torch.nn.Module."
        )
    return model
