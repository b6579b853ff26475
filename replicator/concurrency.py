"""Bounded concurrency helpers shared by the commands that fan work out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def for_each(
    items: AsyncIterable[T], action: Callable[[T], Awaitable[None]], limit: int
) -> None:
    """Run ``action`` on every item, at most ``limit`` at once, as items arrive.

    Items are pulled only when a slot is free, so a long listing is never held in
    memory as pending tasks. ``action`` must handle its own failures: the first
    exception it raises cancels the rest.
    """
    slots = asyncio.Semaphore(limit)

    async def run(item: T) -> None:
        try:
            await action(item)
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        async for item in items:
            await slots.acquire()
            group.create_task(run(item))
