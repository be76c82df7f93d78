"""Errors a user can cause.

Every such error names the input that is wrong and says how to fix it, and is raised
before anything is written.
"""


class UserInputError(ValueError):
    """Bad input from a user (a file, a flag, a form field, an API conf)."""


class SpaceTooSmallError(UserInputError):
    """A search asks for more distinct configurations than its space holds."""
