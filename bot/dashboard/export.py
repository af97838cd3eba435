"""CSV downloads of the dashboard's tables."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from aiohttp import web

from bot.spreadsheet import write_csv


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> web.Response:
    """A CSV attachment (UTF-8, header row first; no cell can run as a formula)."""
    buffer = io.StringIO()
    write_csv(buffer, header, rows)
    return web.Response(
        body=buffer.getvalue().encode("utf-8"),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )
