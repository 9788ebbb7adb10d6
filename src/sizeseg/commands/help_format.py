"""The ``--help`` formatter of the commands: every default shown once, and only when it says something."""

from __future__ import annotations

import argparse


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help, unless the help already states its default in parentheses, the
    option has no value (a flag) or its default is None (the help then says what happens without it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("(default" in text.lower() or action.default in (None, argparse.SUPPRESS)
                or action.nargs == 0 or not action.option_strings):
            return text
        return text + " (default: %(default)s)"
