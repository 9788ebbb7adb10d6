"""Parsing of command-line values shared by the experiments."""

from __future__ import annotations


def int_list(text: str | None, name: str, minimum: int = 1, allow_all: bool = False) -> list | None:
    """Comma-separated ints (``None`` for ``all`` when ``allow_all``), or None for no text.

    >>> int_list("0, 2", "--seeds", minimum=0)
    [0, 2]
    >>> int_list("10,all", "--m", allow_all=True)
    [10, None]

    Raises ValueError naming ``name`` for text that is not such a list or a value below ``minimum``.
    """
    if text is None:
        return None
    values: list = []
    for part in text.split(","):
        part = part.strip()
        if allow_all and part == "all":
            values.append(None)
            continue
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"{name}: expected comma-separated ints >= {minimum}{' or all' if allow_all else ''}, "
                             f"got {text!r}") from None
        if value < minimum:
            raise ValueError(f"{name}: expected values >= {minimum}, got {value}")
        values.append(value)
    return values
