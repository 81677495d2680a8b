"""Interop: the Python ARCP reference runtime (agentruntimecontrolprotocol 1.1.3), started
through its library, hosting the agents of our `arcp serve` so that clients can be tested
against it. Usage: python python_runtime.py [--host 127.0.0.1] [--port 0] --token TOKEN

Its own CLI (`arcp serve`) hosts only an `echo` agent returning `{"echoed": input}`; this
script registers agents following the arcp-rs built-in contract
(crates/arcp-server/src/builtin.rs) as closely as the reference's agent API allows:

| agent   | input                          | result                                         |
|---------|--------------------------------|------------------------------------------------|
| `echo`  | any JSON; logs one line        | the input, unchanged                           |
| `count` | `{"n", "delay_ms"?}`           | `n` progress events (1..n, total n), `{"count": n}` |
| `sleep` | `{"ms"?}`                      | sleeps `ms` (forever if absent) until cancelled; `{"slept_ms": ms}` |

Bad input is refused with `INVALID_REQUEST`. Cancellation and timeouts are the reference's
own: it cancels the agent's task and ends the job with `job.result {final_status:
"cancelled" | "timed_out"}` (spec/interop.md, A-3).

Once the WebSocket server accepts connections it prints one line to stdout:
`listening on ws://HOST:PORT/arcp` (with the real port when `--port 0` was given).
Only loopback hosts are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import sys
from importlib.metadata import version as dist_version
from typing import Any

from arcp import InvalidRequestError, RuntimeInfo, serve_websocket
from arcp.runtime import ARCPRuntime, JobContext, StaticBearerVerifier

PATH = "/arcp"
MAX_COUNT = 10_000_000


def _object(agent: str, value: Any) -> dict[str, Any]:
    """The input as an object; `null` is an empty object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{agent}: input must be a JSON object, got {value!r}")
    return value


def _uint(agent: str, fields: dict[str, Any], name: str) -> int | None:
    """An optional non-negative integer field (`null` counts as absent)."""
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError(f'{agent}: "{name}" must be a non-negative integer, got {value!r}')
    return value


async def echo(value: Any, ctx: JobContext) -> Any:
    await ctx.log("info", "echo")
    return value


async def count(value: Any, ctx: JobContext) -> Any:
    fields = _object("count", value)
    n = _uint("count", fields, "n")
    if n is None:
        raise InvalidRequestError('count: input needs "n", a non-negative integer')
    if n > MAX_COUNT:
        raise InvalidRequestError(f'count: "n" is {n}, more than the limit of {MAX_COUNT}')
    delay_ms = _uint("count", fields, "delay_ms") or 0
    for current in range(1, n + 1):
        if current > 1 and delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        elif current % 256 == 0:
            await asyncio.sleep(0)
        await ctx.progress(current, total=n)
    return {"count": n}


async def sleep(value: Any, ctx: JobContext) -> Any:
    ms = _uint("sleep", _object("sleep", value), "ms")
    if ms is None:
        # Forever: the reference cancels the agent's task on job.cancel / max_runtime_sec.
        await asyncio.Event().wait()
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


async def serve(host: str, port: int, token: str) -> None:
    runtime = ARCPRuntime(
        runtime=RuntimeInfo(
            name="arcp-python-reference", version=dist_version("agentruntimecontrolprotocol")
        ),
        bearer=StaticBearerVerifier({token: "interop"}),
    )
    runtime.register_agent("echo", echo)
    runtime.register_agent("count", count)
    runtime.register_agent("sleep", sleep)

    server = await serve_websocket(runtime.accept, host=host, port=port, path=PATH)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on ws://{host}:{bound}{PATH}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 3)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.close(), 3)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    if not _is_loopback(args.host):
        sys.exit(f"refusing to listen on non-loopback host {args.host}")
    asyncio.run(serve(args.host, args.port, args.token))


if __name__ == "__main__":
    main()
