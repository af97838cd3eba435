"""Waiting in tests: until something has happened, never for a while.

A test that sleeps "long enough" for the bot to do something fails when the machine is busy
(CI shares two cores with other jobs; under load the same step takes many times longer). So
tests wait on an event or poll a condition, and the deadline only bounds a test that is going
to fail anyway: it is long, and reaching it says what never happened.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

#: Seconds to wait for something that takes well under one on an idle machine.
PATIENCE = 60.0


@overload
async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, *, within: float = ..., every: float = ...
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T | None], what: str, *, within: float = ..., every: float = ...
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    what: str,
    *,
    within: float = PATIENCE,
    every: float = 0.02,
) -> Any:
    """Call ``probe`` (sync or async) until it returns something truthy, and return that.

    Raises AssertionError naming ``what`` when ``within`` seconds pass first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not within {within:.0f} s: {what}")
        await asyncio.sleep(every)
