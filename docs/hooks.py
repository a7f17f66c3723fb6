"""mkdocs hook: the command-line reference is tyro's own help of every `ram` command, made at build time from the
config dataclasses and their docstrings, so it cannot fall out of step with the code.

A page writes `<!-- cli: COMMAND -->` where that command's help goes, or `<!-- cli: COMMAND WORDS -->` for the help
those words ask for (`<!-- cli: train all -->`: `ram train --help all`).
"""

import contextlib
import io
import os
import re

CLI = re.compile(r"<!-- cli: ([a-z-]+)((?: [a-z-]+)*) -->")


def _help(command: str, words: str = "") -> str:
    from ram.cli import parse

    out = io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            parse([command, "--help", *words.split()])
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return out.getvalue().rstrip()


def on_page_markdown(markdown: str, page, **_) -> str:
    return CLI.sub(lambda m: f"```text\n{_help(m[1], m[2])}\n```", markdown)
