"""Interop: the Python ARCP reference client (agentruntimecontrolprotocol 1.1.3) against
`arcp serve`. Usage: python python_client.py ws://127.0.0.1:PORT/arcp TOKEN

Covers hello, submit, streamed events, the result, and resume after a transport drop with
the job still running. (Cancel: see spec/interop.md, P-1.) Exits non-zero with a message on the first failure.
"""

import asyncio
import sys

from arcp._messages.session import SessionResume
from arcp._transport.websocket import WebSocketTransport
from arcp.client import ARCPClient
from arcp._messages.session import ClientInfo


def check(cond, msg):
    if not cond:
        raise SystemExit(f"FAIL: {msg}")


async def main(url: str, token: str) -> None:
    info = ClientInfo(name="python-reference-client", version="1.1.3")

    client = ARCPClient(client=info, token=token)
    welcome = await client.connect(await WebSocketTransport.connect(url))
    check(welcome.session_id, "welcome carries a session_id")
    print("hello/welcome ok", welcome.session_id)

    handle = await client.submit(agent="echo", input={"hello": [1, 2, 3]})
    result = await asyncio.wait_for(handle.done, 10)
    check(result.final_status == "success", f"echo succeeded: {result}")
    check(result.result == {"hello": [1, 2, 3]}, f"echo returns its input: {result.result}")
    print("submit/result ok")

    handle = await client.submit(agent="count", input={"n": 5})
    kinds = []

    async def collect():
        async for event in handle.events():
            kinds.append(event.get("kind"))

    collector = asyncio.create_task(collect())
    result = await asyncio.wait_for(handle.done, 10)
    await asyncio.sleep(0.1)
    collector.cancel()
    check(result.result == {"count": 5}, f"count result: {result.result}")
    check(kinds.count("progress") == 5, f"five progress events streamed: {kinds}")
    print("stream ok", kinds)

    # Cancel is not exercised with this client: it ends cancelled jobs with `job.result`
    # and its read pump dies on the spec's `job.error {final_status: "cancelled"}`
    # (spec/interop.md, P-1). Our cancel path is checked by the conformance suite instead.

    handle = await client.submit(agent="count", input={"n": 20, "delay_ms": 50})
    await asyncio.sleep(0.3)
    session_id = client.session_id
    token_now = client.welcome.resume_token
    seen = client.latest_event_seq
    await client._transport.close()  # drop the transport mid-stream
    try:
        await client.aclose()  # retire the old client (its read pump saw the close)
    except Exception:
        pass
    await asyncio.sleep(0.2)
    resumed = ARCPClient(client=info, token=token)
    welcome2 = await resumed.resume(
        await WebSocketTransport.connect(url),
        resume=SessionResume(session_id=session_id, resume_token=token_now, last_event_seq=seen),
    )
    check(welcome2.session_id == session_id, "resume keeps the session id")
    # The job keeps streaming to the resumed session; its result arrives there.
    done = asyncio.get_running_loop().create_future()
    orig = resumed._dispatch

    async def spy(env):
        if env.type == "job.result" and env.job_id == handle.job_id and not done.done():
            done.set_result(env.payload)
        await orig(env)

    resumed._dispatch = spy
    payload = await asyncio.wait_for(done, 10)
    check(payload.get("result") == {"count": 20}, f"the resumed job finished: {payload}")
    print("resume ok")
    await resumed.close()
    print("python reference client: all interop checks passed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
