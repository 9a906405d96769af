#!/usr/bin/python3
"""A streaming load client of the kind users write today: asyncio + aiohttp.

N coroutines each send streaming POSTs to /v1/chat/completions, one after
another, until K requests are done (closed loop, like `tokentap replay
--concurrency N`); with --ramp S, coroutine i starts i*S/N seconds late, so
the first N requests go out at a constant rate over S seconds (like
`tokentap replay --rate N/S --arrival constant`). Each SSE line is read with `async for line in
resp.content`; every token event gets a time.monotonic() timestamp taken
as soon as its line arrives (before json.loads, the most favourable place
for Python). When the server sends `: t=<monotonic µs>` comments
(`tokentap sim --stamp`), the event's timestamp error is its receive time
minus that stamp (both CLOCK_MONOTONIC on Linux).

bench/loadgen runs it under /usr/bin/time; the client itself only writes a
summary JSON (--out). Request bodies come from a JSONL trace: tokentap
trace v1 lines ("body") or simple request lines ({"messages": ...}).
"""
import argparse
import array
import asyncio
import json
import sys
import time

import aiohttp


def load_bodies(path):
    bodies = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            obj = json.loads(line)
            body = obj["body"] if "v" in obj else obj
            body.pop("timestamp", None)
            body.pop("session", None)
            body.setdefault("stream", True)
            bodies.append(body)
    return bodies


class Stats:
    def __init__(self):
        self.events = 0
        self.ok = 0
        self.failed = 0
        self.errors_us = array.array("d")  # receive time - server stamp, µs
        self.first_error = None


async def stream_one(session, url, body, stats):
    async with session.post(url, json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        stamp = None
        async for raw in resp.content:
            now = time.monotonic()
            line = raw.decode("utf-8").strip()
            if line.startswith(": t="):
                stamp = int(line[4:])
                continue
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            choices = chunk.get("choices") or []
            delta = choices[0].get("delta", {}) if choices else {}
            if delta.get("content") or delta.get("reasoning_content"):
                stats.events += 1
                if stamp is not None:
                    stats.errors_us.append(now * 1e6 - stamp)
            stamp = None


async def worker(session, url, bodies, counter, stats, start_at):
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    while True:
        i = counter[0]
        if i >= counter[1]:
            return
        counter[0] += 1
        try:
            await stream_one(session, url, bodies[i % len(bodies)], stats)
            stats.ok += 1
        except Exception as e:  # a user's script counts and goes on
            stats.failed += 1
            if stats.first_error is None:
                stats.first_error = repr(e)


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(q / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[k]


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", help="JSONL of request bodies (tokentap v1 or {\"messages\":...} lines)")
    ap.add_argument("--target", required=True, help="http://HOST:PORT")
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--requests", type=int, help="total requests (default: the trace's size)")
    ap.add_argument("--ramp", type=float, default=0.0,
                    help="start the N streams evenly over this many seconds (default 0: at once)")
    ap.add_argument("--out", required=True, help="summary JSON")
    a = ap.parse_args()

    bodies = load_bodies(a.trace)
    url = a.target.rstrip("/") + "/v1/chat/completions"
    stats = Stats()
    counter = [0, a.requests or len(bodies)]
    # limit=0: aiohttp's default pool (100 connections) would cap concurrency.
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    t0 = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        step = a.ramp / a.concurrency
        await asyncio.gather(*(worker(session, url, bodies, counter, stats, t0 + i * step)
                               for i in range(a.concurrency)))
    wall = time.monotonic() - t0
    errs = sorted(stats.errors_us)
    summary = {
        "client": f"python {sys.version.split()[0]} aiohttp {aiohttp.__version__}",
        "duration_s": wall,
        "requests_ok": stats.ok,
        "requests_failed": stats.failed,
        "first_error": stats.first_error,
        "token_events": stats.events,
        "events_per_s": stats.events / wall if wall > 0 else 0,
        "stamp_error_us": {"count": len(errs), "p50": percentile(errs, 50),
                           "p99": percentile(errs, 99), "max": errs[-1] if errs else None},
    }
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    asyncio.run(main())
