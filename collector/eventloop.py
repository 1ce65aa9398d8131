"""The event loop the collector runs on: uvloop when it is installed, else asyncio's own."""

from __future__ import annotations

import asyncio


def install_uvloop() -> None:
    """Make uvloop the event loop policy of this process, if uvloop is installed."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
