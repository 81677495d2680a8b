"""The Python ARCP reference runtime as a benchmark peer for `cargo xtask bench`.

Runs `arcp.runtime.ARCPRuntime` (agentruntimecontrolprotocol 1.1.3) over its own
WebSocket server (`arcp.serve_websocket`, path `/arcp`) exactly as the package's
`arcp serve` CLI does (in-memory event log, default heartbeat, resume window and
concurrency), with two agents:

- `echo`: the CLI's agent — logs one line, returns `{"echoed": input}`;
- `count`: the equivalent of arcp-rs's built-in `count` — input `{"n": N}`, emits N
  `progress` events (`current` 1..N, `total` N), returns `{"count": N}`.

Usage: `python peer.py --token T [--port P] [--host H]` (port 0, the default, picks a
free one). Once it accepts connections it prints `listening on ws://HOST:PORT/arcp` as
its first stdout line; it runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from typing import Any

from arcp import RuntimeInfo, serve_websocket
from arcp.runtime import ARCPRuntime, JobContext, StaticBearerVerifier

# How many `progress` events `count` emits between voluntary yields: the library's emit
# path never suspends, so without this a large N would queue every event before the
# write pump sends the first one (arcp-rs's `count` yields every 256 events too).
YIELD_EVERY = 256


async def echo(input_value: Any, ctx: JobContext) -> Any:
    """The reference CLI's `echo`: one log line, then the input wrapped."""
    await ctx.log("info", "echo started")
    return {"echoed": input_value}


async def count(input_value: Any, ctx: JobContext) -> Any:
    """`{"n": N}` -> N progress events (`current` 1..N, `total` N), then `{"count": N}`."""
    n = input_value.get("n") if isinstance(input_value, dict) else None
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError('count: input needs "n", a non-negative integer')
    for current in range(1, n + 1):
        await ctx.progress(current, total=n)
        if current % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return {"count": n}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()

    # The library logs through stdlib logging; keep only warnings, on stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    runtime = ARCPRuntime(
        runtime=RuntimeInfo(name="arcp-python-peer", version="1.1.3"),
        bearer=StaticBearerVerifier({args.token: "bench"}),
    )
    runtime.register_agent("echo", echo)
    runtime.register_agent("count", count)

    server = await serve_websocket(runtime.accept, host=args.host, port=args.port, path="/arcp")
    port = next(iter(server.sockets)).getsockname()[1]
    print(f"listening on ws://{args.host}:{port}/arcp", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
