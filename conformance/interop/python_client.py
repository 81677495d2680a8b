"""Interop: the Python ARCP reference client (agentruntimecontrolprotocol 1.1.3) against
`arcp serve`. Usage: python python_client.py ws://127.0.0.1:PORT/arcp TOKEN

Covers hello, submit, streamed events, the result, listing (paged), subscription with
history and live from a second session, acks, and resume after a transport drop with the
job still running. (Cancel: see spec/interop.md, P-1.) Exits non-zero with a message on the first failure.
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

    count_job = handle.job_id

    # Listing (§6.6): page through this principal's jobs two at a time.
    listed = []
    cursor = None
    for _ in range(100):
        page = await client.list_jobs(limit=2, cursor=cursor)
        check(len(page.jobs) <= 2, f"a page holds at most limit entries: {page}")
        listed.extend(j.job_id for j in page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            break
    check(count_job in listed and len(listed) == len(set(listed)), f"every job listed once: {listed}")
    entry = [j for j in (await client.list_jobs(limit=1000)).jobs if j.job_id == count_job][0]
    check(entry.status == "success" and entry.agent == "count", f"listed entry: {entry}")
    print("list_jobs ok", len(listed), "jobs")

    # Subscription (§7.6) from a second session of the same principal, with history: the
    # replay precedes job.subscribed (spec order). The reference client only registers the
    # job once job.subscribed arrives and drops the replay (spec/interop.md P-15), so the
    # replayed envelopes are observed on its dispatch path.
    watcher = ARCPClient(client=info, token=token)
    await watcher.connect(await WebSocketTransport.connect(url))
    replayed = []
    orig_w = watcher._dispatch

    async def watch_spy(env):
        if env.job_id == count_job and env.type in ("job.event", "job.result", "job.error"):
            replayed.append((env.event_seq, env.type, env.payload.get("kind")))
        await orig_w(env)

    watcher._dispatch = watch_spy
    sub = await asyncio.wait_for(watcher.subscribe(count_job, history=True), 10)
    check(sub.job_id == count_job and bool(sub.replayed), f"job.subscribed replayed: {sub}")
    check(len(replayed) == 7, f"status, five progress and the result replayed: {replayed}")
    check([r[0] for r in replayed] == list(range(1, 8)), f"renumbered into the watcher's sequence: {replayed}")
    check(sub.subscribed_from == 7, f"subscribed_from is the watcher's latest seq: {sub.subscribed_from}")
    print("subscribe (history) ok", sub.subscribed_from)

    # Live subscription to a running job, then its result through the reference's handle.
    live = await client.submit(agent="count", input={"n": 5, "delay_ms": 50})
    sub2 = await asyncio.wait_for(watcher.subscribe(live.job_id), 10)
    check(not sub2.replayed, "no history asked, none replayed")
    live_result = await asyncio.wait_for(sub2.handle.done, 10)
    check(live_result.result == {"count": 5}, f"the subscriber sees the live result: {live_result}")
    await asyncio.wait_for(live.done, 10)
    print("subscribe (live) ok")

    # Acks (§6.5): acknowledge everything seen; the session carries on.
    await client.ack(client.latest_event_seq)
    await watcher.ack(watcher.latest_event_seq)
    page = await client.list_jobs(limit=1)
    check(len(page.jobs) == 1, "the session carries on after an ack")
    await watcher.close()
    print("ack ok")

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
