"""CSV files that moderators open in a spreadsheet: text from users never runs as a formula.

A question such as ``=HYPERLINK("https://evil.example","click")`` is data to the bot but a
formula to Excel, LibreOffice and Google Sheets, which also skip leading spaces and read
full-width signs (``＝``, ``＋``) as their ASCII forms. Every CSV export (the CLI's ``logs
--format csv`` and the dashboard's downloads) writes through :func:`write_csv`, so there is
one rule. defusedcsv, the library for this, checks only the first character as written
(not after spaces, not the full-width forms), hence this small module.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable, Sequence
from typing import TextIO

#: After leading whitespace and NFKC folding, a cell starting with one of these is a formula.
FORMULA_START = ("=", "+", "-", "@")
#: Characters a spreadsheet treats as the start of a new cell or line: formula before them.
CELL_BREAKS = ("\t", "\r", "\n")


def is_formula(text: str) -> bool:
    """Whether a spreadsheet could read ``text`` as a formula."""
    if text.startswith(CELL_BREAKS):
        return True
    stripped = text.lstrip()
    return bool(stripped) and unicodedata.normalize("NFKC", stripped[0]).startswith(FORMULA_START)


def safe_cell(value: object) -> object:
    """The value as a CSV cell: text that could run as a formula gets a leading ``'``
    (shown by spreadsheets as plain text); numbers and None are kept as they are."""
    if value is None or isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if is_formula(text) else text


def write_csv(
    out: TextIO,
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    lineterminator: str = "\r\n",
) -> None:
    """Write a header row and ``rows`` to ``out``, every cell through :func:`safe_cell`."""
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
