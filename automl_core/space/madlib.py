"""MADlib compatibility: ``compile_params_grid`` / ``fit_params_grid`` strings -> a space.

MADlib's ``generate_model_configs`` takes two Python dict literals, e.g.::

    compile: {'loss': ['categorical_crossentropy'],
              'optimizer_params_list': [
                  {'optimizer': ['SGD'], 'lr': [0.0001, 0.1, 'log'], 'momentum': [0.9, 0.99]},
                  {'optimizer': ['Adam'], 'lr': [0.001]}],
              'metrics': ['accuracy']}
    fit:     {'batch_size': [32, 64], 'epochs': [1]}

Every value is a list. ``[low, high, 'linear' | 'log' | 'log_near_one']`` is a range
(random search only), any other list a choice. The translation, matching MADlib's
sampling (``madlib_keras_model_selection.py_in``):

- ``linear`` -> ``uniform``; ``log`` -> ``loguniform`` (MADlib samples
  ``10**uniform(log10 low, log10 high)``, the same distribution);
  ``log_near_one`` -> ``log_near_one`` (``1 - 10**uniform(log10(1-high), log10(1-low))``).
- A one-item list becomes a fixed value, a longer one a choice. Repeated values
  (``[32, 32, 64]``, or ``SGD`` and ``sgd``) and repeated optimizer options are kept
  once, as MADlib keeps each configuration once.
- ``optimizer_params_list`` becomes a conditional choice (group label
  ``optimizer_params_list``) whose options are merged into the configuration.
- Optimizer names map to the engine's: SGD -> sgd, Adam -> adam, AdamW -> adamw,
  RMSprop -> rmsprop (case-insensitive); Keras' ``learning_rate`` becomes ``lr``.
- ``loss``, ``metrics`` and other keys are kept as they are (the engine ignores keys it
  does not know). ``epochs`` is kept as a parameter, but a search's budget (``--epochs``
  or Hyperband's ``R``) overrides it.

Literals are read with ``ast.literal_eval``, never ``eval``.
"""

from __future__ import annotations

import ast
from typing import Any

from automl_core.errors import UserInputError
from automl_core.space.search_space import SearchSpace

#: MADlib range names -> our distribution names.
MADLIB_DISTRIBUTIONS: dict[str, str] = {
    "linear": "uniform",
    "log": "loguniform",
    "log_near_one": "log_near_one",
}
#: MADlib/Keras optimizer names (lower-cased) -> the engine's names.
OPTIMIZERS: dict[str, str] = {"sgd": "sgd", "adam": "adam", "adamw": "adamw", "rmsprop": "rmsprop"}
#: Keras spellings renamed to the engine's keys.
RENAMED_KEYS: dict[str, str] = {"learning_rate": "lr"}
OPTIMIZER_PARAMS_LIST = "optimizer_params_list"


def space_from_madlib(compile_grid: str, fit_grid: str) -> SearchSpace:
    """The search space equivalent to MADlib's compile and fit params grids.

    Raises ``UserInputError`` when a grid is not a dict literal of lists, uses an unknown
    distribution or optimizer, or the two grids (or an optimizer option and the rest of
    the compile grid) set the same parameter.
    """
    compile_dict = _literal(compile_grid, "compile params grid")
    fit_dict = _literal(fit_grid, "fit params grid")
    spec: dict[str, Any] = {}
    for source, grid in (("compile", compile_dict), ("fit", fit_dict)):
        for key, values in grid.items():
            if key == OPTIMIZER_PARAMS_LIST and source == "compile":
                name, converted = key, _optimizer_options(values)
            else:
                name, converted = _convert(key, values)
            if name in spec:
                raise UserInputError(
                    f"The MADlib grids set {name!r} twice (the {source} grid repeats it); "
                    "keep it in one grid."
                )
            spec[name] = converted
    return SearchSpace.from_dict(spec)


def _literal(text: str, what: str) -> dict[str, Any]:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise UserInputError(
            f"The {what} is not a Python dict literal: {text!r}. Write e.g. "
            "{'batch_size': [32, 64]}."
        ) from None
    if not isinstance(value, dict):
        raise UserInputError(
            f"The {what} must be a dict literal, but it is a {type(value).__name__}: {text!r}."
        )
    for key in value:
        if not isinstance(key, str):
            raise UserInputError(f"The {what} has the key {key!r}; keys must be strings.")
    return value


def _convert(key: str, values: object) -> tuple[str, Any]:
    """``(our name, our spec)`` for one MADlib grid entry."""
    name = RENAMED_KEYS.get(key, key)
    if not isinstance(values, list):
        raise UserInputError(
            f"MADlib grid values must be lists, but {key!r} is {values!r}; write "
            f"'{key}': [{values!r}]."
        )
    if not values:
        raise UserInputError(
            f"MADlib grid entry {key!r} is an empty list; give at least one value."
        )
    if _is_range(values):
        low, high, dist = values
        if dist not in MADLIB_DISTRIBUTIONS:
            raise UserInputError(
                f"MADlib grid entry {key!r} uses the distribution {dist!r}; valid ones are "
                f"{', '.join(MADLIB_DISTRIBUTIONS)}."
            )
        return name, {MADLIB_DISTRIBUTIONS[dist]: [low, high]}
    if len(values) > 1 and isinstance(values[-1], str) and _all_numbers(values[:-1]):
        raise UserInputError(
            f"MADlib grid entry {key!r} is {values!r}: a range is written "
            "[low, high, 'linear' | 'log' | 'log_near_one'] with exactly three items."
        )
    if name == "optimizer":
        values = [_optimizer_name(v) for v in values]
    values = _without_repeats(values)
    return name, values[0] if len(values) == 1 else values


def _without_repeats(values: list[Any]) -> list[Any]:
    """``values`` with each value kept once (``model.same_value``: 1 == 1.0, True != 1), in
    order.

    Linear: each value is looked up by ``_same_value_key`` (comparing each with all kept
    took 15.8 s for 8,000 values).
    """
    kept: list[Any] = []
    seen: set[Any] = set()
    for value in values:
        key = _same_value_key(value)
        if key not in seen:
            seen.add(key)
            kept.append(value)
    return kept


def _same_value_key(value: object) -> Any:
    """A hashable key, equal for two values exactly when ``same_value`` holds for them:
    numbers share one kind (``1 == 1.0`` hash alike), booleans have their own, anything
    else is told apart by its type, then compared as ``==`` does (``_frozen``). A NaN is
    the same as nothing (``nan != nan``), so it gets a key of its own."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value) if value == value else ("nan", object())
    return ("other", type(value), _frozen(value))


# Tags of the frozen forms of lists and dicts: objects no literal can hold, so a frozen
# list never equals a tuple that a grid wrote.
_LIST, _DICT = object(), object()


def _frozen(value: Any) -> Any:
    """A hashable form of a literal (``ast.literal_eval``'s types), equal to another's
    exactly when the values are equal (``==``: containers by content, ``1 == 1.0 ==
    True`` inside them, as Python compares them)."""
    if isinstance(value, dict):
        return (_DICT, frozenset((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return (_LIST, tuple(_frozen(v) for v in value))
    if isinstance(value, tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, set | frozenset):
        return frozenset(_frozen(v) for v in value)  # a set equals a frozenset: as ==
    return value


def _is_range(values: list[Any]) -> bool:
    return len(values) == 3 and isinstance(values[2], str) and _all_numbers(values[:2])


def _all_numbers(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _optimizer_name(value: object) -> str:
    if isinstance(value, str) and value.lower() in OPTIMIZERS:
        return OPTIMIZERS[value.lower()]
    raise UserInputError(
        f"The MADlib optimizer {value!r} is not supported; use one of SGD, Adam, AdamW, "
        "RMSprop (give its parameters as separate keys in optimizer_params_list)."
    )


def _optimizer_options(options: object) -> list[dict[str, Any]]:
    if not isinstance(options, list) or not options:
        raise UserInputError(
            f"{OPTIMIZER_PARAMS_LIST} must be a non-empty list of dicts, but is {options!r}."
        )
    converted: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for i, option in enumerate(options):
        if not isinstance(option, dict) or not option:
            raise UserInputError(
                f"Option {i} of {OPTIMIZER_PARAMS_LIST} must be a non-empty dict such as "
                f"{{'optimizer': ['Adam'], 'lr': [0.001]}}, but is {option!r}."
            )
        entry: dict[str, Any] = {}
        for key, values in option.items():
            if not isinstance(key, str):
                raise UserInputError(f"Option {i} of {OPTIMIZER_PARAMS_LIST} has the key {key!r}.")
            name, spec = _convert(key, values)
            if name in entry:
                raise UserInputError(
                    f"Option {i} of {OPTIMIZER_PARAMS_LIST} sets {name!r} twice; keep one."
                )
            entry[name] = spec
        frozen = _frozen(entry)  # looked up, not compared with every earlier option
        if frozen not in seen:  # a repeated option would repeat its configurations
            seen.add(frozen)
            converted.append(entry)
    return converted
