"""The one exception type of the data layer."""

from __future__ import annotations


class DataError(ValueError):
    """Input data cannot be used; the message names the file (or row) and the problem.

    A subclass of :class:`ValueError`, so the command line reports it as bad input.
    """
