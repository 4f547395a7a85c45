#!/usr/bin/env python3
"""tls_load.py - SMTP session load for t/bench/tls.sh (python3 stdlib only).

  tls_load.py --port P --mode plain|starttls|smtps -n SESSIONS -c CONC

Each session: banner, EHLO, (STARTTLS, handshake, EHLO again), QUIT; with
smtps the handshake comes first.  A fresh TLS session every time (no
resumption), the server's certificate not verified.  Prints one line:
"ok=N failed=M secs=S rate=R" (sessions per second) and the first error.
"""
import argparse
import asyncio
import ssl
import sys
import time


async def reply(r):
    while True:
        line = await asyncio.wait_for(r.readline(), 30)
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return line[:3]


async def session(a, ctx):
    r, w = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", a.port, ssl=ctx if a.mode == "smtps" else None,
        server_hostname=None), 30)
    try:
        if await reply(r) != b"220":
            raise ConnectionError("no 220 banner")
        w.write(b"EHLO load.bench.test\r\n")
        if await reply(r) != b"250":
            raise ConnectionError("EHLO refused")
        if a.mode == "starttls":
            w.write(b"STARTTLS\r\n")
            if await reply(r) != b"220":
                raise ConnectionError("STARTTLS refused")
            await asyncio.wait_for(w.start_tls(ctx), 30)
            w.write(b"EHLO load.bench.test\r\n")
            if await reply(r) != b"250":
                raise ConnectionError("EHLO after STARTTLS refused")
        w.write(b"QUIT\r\n")
        await reply(r)
    finally:
        w.close()


async def main(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    left = a.n
    ok = failed = 0
    first = None

    async def worker():
        nonlocal left, ok, failed, first
        while left > 0:
            left -= 1
            try:
                await session(a, ctx)
                ok += 1
            except Exception as e:  # counted, first one shown
                failed += 1
                if first is None:
                    first = "%s: %s" % (type(e).__name__, e)

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(a.c)))
    secs = time.monotonic() - t0
    print("ok=%d failed=%d secs=%.3f rate=%.1f%s" % (
        ok, failed, secs, ok / secs if secs > 0 else 0,
        " error=" + first.replace(" ", "_") if first else ""))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["plain", "starttls", "smtps"],
                    required=True)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("-c", type=int, default=10)
    asyncio.run(main(ap.parse_args()))
    sys.exit(0)
