"""The WeCom sandbox: a faithful, stateful stand-in for qyapi.weixin.qq.com.

For tests, demos and first runs. An independent reading of WeCom's behaviour:
it never imports CampBot's WeCom client.

- `state.SandboxState`: the corp (apps, members, customers, groups, robots, media),
  every call it was asked and every message it delivered, and the knobs tests
  turn: token expiry by the injected clock, early invalidation, fault injection.
- `server.create_sandbox_app(state)`: qyapi's /cgi-bin/... over ASGI, plus
  /sandbox/... to inspect and drive it; `server.sandbox_transport(state)` is the
  same cgi side as an httpx.MockTransport; `server.serve_sandbox` runs uvicorn.
- `sender.CallbackSender`: WeCom → CampBot callbacks (encrypted, signed, consistent
  with the state) built with `callbacks.CallbackBuilder`, and WeCom-style retries.
- `errcodes`: which errcodes the sandbox answers, and which errmsgs were seen live.
"""
