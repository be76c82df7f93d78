"""Errors a user can cause.

Every such error names the input that is wrong and says how to fix it, and is raised
before anything is written.
"""


class UserInputError(ValueError):
    """Bad input from a user (a file, a flag, a form field, an API conf)."""


class SpaceTooSmallError(UserInputError):
    """A search asks for more distinct configurations than its space holds."""


def shown(value: object, limit: int = 120) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters (a list of thousands of
    numbers or names would bury the message)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + " ..."
