import sys, time
from gateway.app import create_served_app
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"0")]
STATS = {"n": 0, "t": 0.0, "send": 0.0}
def create():
    app = create_served_app()
    inner = app.asgi_handler
    async def front(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/rawbare":
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["type"] != "http":
            await inner(scope, receive, send); return
        async def timed_send(m):
            t = time.perf_counter(); await send(m); STATS["send"] += time.perf_counter() - t
        t = time.perf_counter()
        await inner(scope, receive, timed_send)
        STATS["t"] += time.perf_counter() - t; STATS["n"] += 1
        if STATS["n"] % 50000 == 0:
            print(f"PROBE n={STATS['n']} handler={STATS['t']/STATS['n']*1e6:.1f}us send={STATS['send']/STATS['n']*1e6:.1f}us headers={type(scope['headers'])}", file=sys.stderr, flush=True)
            STATS.update(n=0, t=0.0, send=0.0)
    app.asgi_handler = front
    return app
