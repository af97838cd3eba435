"""CSV cells a spreadsheet would run as formulas are written as text."""

from __future__ import annotations

import csv
import io

import pytest

from bot.spreadsheet import safe_cell, write_csv


@pytest.mark.parametrize(
    "text",
    [
        "=1+1",
        '=HYPERLINK("https://evil.example","click")',
        "@SUM(A1:A3)",
        "+1",
        "-2+3",
        " =1+1",  # spreadsheets skip the leading space
        "\u3000=1",  # an ideographic space too
        "\uff1d1+1",  # a full-width equals sign reads as "="
        "\uff0b1",
        "\tleading tab",
        "\rcarriage return",
    ],
)
def test_formula_like_text_gets_a_quote(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["who runs the board?", "a=b", "", "  plain", "1-2"])
def test_plain_text_is_kept(text: str) -> None:
    assert safe_cell(text) == text


def test_numbers_and_missing_values_stay_what_they_are() -> None:
    assert safe_cell(-0.25) == -0.25
    assert safe_cell(3) == 3
    assert safe_cell(None) is None


def test_every_cell_of_a_file_is_neutralised() -> None:
    out = io.StringIO()
    write_csv(out, ("id", "text"), [(1, "=cmd|' /C calc'!A0"), (2, "fine")])
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["id", "text"], ["1", "'=cmd|' /C calc'!A0"], ["2", "fine"]]
