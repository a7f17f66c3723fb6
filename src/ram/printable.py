"""Text that prints safely: file names and the messages that hold them, as the terminal and JSON may show them.

Every other module prints a path through these (`ram: notice:` lines of the data loader, `ram predict`'s lines, the
CLI's one-line errors), so they sit at the bottom of the house and import nothing of it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["encodable", "shown"]


def shown(text: str | Path) -> str:
    """A path, or a message that may hold one, as text that can always be printed, and printed safely: the bytes of a
    file name that is not UTF-8 (kept by Python as lone surrogates, which print() refuses) as \\xNN, and control
    characters as \\xNN too (a name holding ESC [ 2 J would clear the terminal, one holding a newline forge a line)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", encodable(text))


def encodable(text: str | Path) -> str:
    """text with the bytes of a file name that is not UTF-8 as \\xNN, and nothing else changed: for JSON, which
    escapes control characters itself."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (C1 holds another escape, CSI)
