"""The nodes a search space is made of, and the maths of each distribution.

A space is a tuple of ``(name, node)`` pairs. A node is one of:

- ``Fixed(value)``: the parameter always takes ``value``.
- ``Choice(values)``: one of a list of plain values.
- ``Conditional(options)``: one of several sub-spaces. The chosen sub-space's own
  parameters are merged into the flat configuration; the parameter's name is only a
  group label and never appears in a configuration.
- ``Range(kind, low, high, q)``: a draw from a distribution (``uniform``,
  ``loguniform``, ``quniform``, ``qloguniform``, ``randint``, ``log_near_one``).

Nodes validate nothing: ``automl_core.space.parse`` builds them from user input and
owns every error message. Everything here is a pure function of its arguments; the
only randomness is the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Scalar = str | int | float | bool | None

#: The one-key mapping forms a parameter spec may take, in the order errors list them.
DISTRIBUTIONS: tuple[str, ...] = (
    "choice",
    "uniform",
    "loguniform",
    "quniform",
    "qloguniform",
    "randint",
    "log_near_one",
)
#: The distributions that draw a number from a range (all but ``choice``).
RANGE_KINDS: tuple[str, ...] = DISTRIBUTIONS[1:]
#: Range kinds that take a third argument, the quantum ``q``.
QUANTIZED_KINDS: tuple[str, ...] = ("quniform", "qloguniform")


@dataclass(frozen=True)
class Fixed:
    """A parameter that always takes one value."""

    value: Scalar


@dataclass(frozen=True)
class Choice:
    """A parameter that takes one of several plain values, each equally likely."""

    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Conditional:
    """A group label whose chosen option (a sub-space) is merged into the configuration."""

    options: tuple[Params, ...]


@dataclass(frozen=True)
class Range:
    """A number drawn from a distribution over ``[low, high]``.

    Semantics follow hyperopt so that native sampling and hyperopt proposals describe
    the same space: ``quniform`` is ``round(uniform(low, high) / q) * q``,
    ``qloguniform`` is ``round(exp(uniform(log low, log high)) / q) * q``, except that a
    value rounded out of ``[low, high]`` (hyperopt lets it) is moved to the nearest
    multiple of ``q`` inside, so ``quniform: [16, 512, 64]`` never gives a batch size of
    0; ``randint`` is an integer in ``[low, high)``
    (``high`` exclusive, like numpy). ``log_near_one`` is MADlib's distribution for
    values close to 1 (momentum, betas): ``1 - 10**uniform(log10(1-high), log10(1-low))``.
    Bounds of ``loguniform``/``qloguniform`` are the values themselves, not their logs.
    """

    kind: str
    low: int | float
    high: int | float
    q: int | float | None = None

    @property
    def integral(self) -> bool:
        """True when every value drawn is an ``int``.

        ``randint`` always is; a quantized range is when ``low``, ``high`` and ``q`` are
        all integers (so ``quniform: [16, 256, 16]`` gives batch sizes, not floats).
        """
        if self.kind == "randint":
            return True
        if self.kind in QUANTIZED_KINDS:
            return all(_is_int(v) for v in (self.low, self.high, self.q))
        return False

    def sample(self, rng: np.random.Generator) -> int | float:
        """One value, drawn with ``rng``; a Python ``int`` or ``float``, never numpy."""
        if self.kind == "randint":
            return int(rng.integers(int(self.low), int(self.high)))
        if self.kind == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "log_near_one":
            exponent = rng.uniform(math.log10(1.0 - self.high), math.log10(1.0 - self.low))
            return float(1.0 - 10.0**exponent)
        if self.kind in ("loguniform", "qloguniform"):
            raw = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:  # quniform
            raw = float(rng.uniform(self.low, self.high))
        return self.finish(raw)

    def finish(self, raw: float) -> int | float:
        """The configuration value for a raw draw: quantized, and an ``int`` where integral.

        Native sampling and hyperopt decoding both end here, so both give identical
        values and types for the same draw.
        """
        if self.kind in QUANTIZED_KINDS:
            assert self.q is not None  # set by the parser for every quantized kind
            first, last = self.quantum_steps()
            inside_low, inside_high = first * self.q, last * self.q
            raw = float(np.round(raw / self.q) * self.q)
            raw = min(max(raw, inside_low), inside_high)
        if self.integral:
            return int(round(raw))
        return float(raw)

    def quantum_steps(self) -> tuple[int, int]:
        """The first and last ``k`` with ``k * q`` inside ``[low, high]``: a quantized
        range's values are ``k * q`` for ``k`` from one to the other.

        ``low / q`` is taken as the integer it is meant to be when within rounding error
        of it: in floats ``0.7 / 0.1`` is 6.999999999999999, and flooring that would
        leave ``quniform: [0.1, 0.7, 0.1]`` without its upper bound 0.7, which hyperopt's
        ``round(uniform / q) * q`` does give.
        """
        assert self.q is not None

        def near(x: float) -> float:
            return float(round(x)) if abs(x - round(x)) <= 1e-9 * max(1.0, abs(x)) else x

        return math.ceil(near(self.low / self.q)), math.floor(near(self.high / self.q))

    def contains(self, value: object) -> bool:
        """True when ``value`` could have been drawn from this range.

        Quantized ranges accept ``q/2`` outside the bounds (rounding can land there);
        float comparisons allow a relative slack of 1e-9 for values that went through
        a text format.
        """
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value):
            return False
        if self.kind == "randint":
            return float(value).is_integer() and self.low <= value < self.high
        slack = 1e-9 * max(1.0, abs(self.low), abs(self.high))
        if self.kind in QUANTIZED_KINDS:
            assert self.q is not None
            slack += abs(self.q) / 2
        return self.low - slack <= value <= self.high + slack

    def args(self) -> list[int | float]:
        """The arguments as written in a space file: ``[low, high]`` or ``[low, high, q]``."""
        return [self.low, self.high] if self.q is None else [self.low, self.high, self.q]

    def describe(self) -> str:
        """A short human form, e.g. ``loguniform [0.001, 0.03]``."""
        return f"{self.kind} {self.args()}"


Node = Fixed | Choice | Conditional | Range
Params = tuple[tuple[str, Node], ...]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def same_value(a: object, b: object) -> bool:
    """Equality that keeps ``True`` apart from ``1`` but lets ``1 == 1.0``.

    Configurations come back from JSON columns, where an integral float may return as
    an int; booleans must still never match numbers.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def labelled(params: Params, prefix: str = "") -> list[tuple[str, str, Node]]:
    """``(label, name, node)`` for every node of the space, depth first, in spec order.

    A top-level parameter's label is its name; a parameter inside option ``i`` of the
    conditional labelled ``L`` is ``L/i/name``. Labels identify parameters to hyperopt,
    so options may reuse a name (``lr`` under both ``sgd`` and ``adam``) and still be
    modelled separately.
    """
    result: list[tuple[str, str, Node]] = []
    for name, node in params:
        label = f"{prefix}/{name}" if prefix else name
        result.append((label, name, node))
        if isinstance(node, Conditional):
            for i, option in enumerate(node.options):
                result.extend(labelled(option, f"{label}/{i}"))
    return result
