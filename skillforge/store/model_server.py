"""An HTTP server of a registered library or agent model (`skillforge serve`): MLflow's
scoring protocol on the model's own checked ONNX graph, run by onnxruntime, served by uvicorn.

POST /invocations with `{"inputs": {"observation": [[...], ...], "skill": [k, ...]}}`
(Content-Type: application/json) answers `{"predictions": ...}`, as `mlflow models serve`
does; GET /ping and /health answer 200. Every bad request gets a 4xx answer
`{"error_code": ..., "message": ...}` whose message is one line, and the server goes on
serving. An answer is always valid JSON: numbers beyond float32 and answers that would hold
NaN or infinity are refused. Requests are answered one at a time on uvicorn's event loop
(one observation takes tens of µs on onnxruntime; a thread per request costs more than that).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import numpy as np
import uvicorn

from skillforge.core.errors import SkillforgeError, first_line
from skillforge.store.ui_server import url

MAX_REQUEST_BYTES = 64 * 2**20
"""The largest request body accepted (about 500,000 Hopper observations as JSON)."""

BACKLOG = 2048
"""Connections the kernel queues before the server accepts them (uvicorn's default)."""

KEEP_ALIVE_SECONDS = 75
"""How long an idle kept-alive connection stays open (uvicorn's default, 5 s, drops a client
that pauses between episodes; 75 s is nginx's default)."""

FLOAT32_MAX = float(np.finfo(np.float32).max)


class RequestError(Exception):
    """A request the model cannot answer: an HTTP status and a one-line message."""

    def __init__(self, status: HTTPStatus, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close  # end the connection with the answer: the body was not read


def predictions(graph, body: bytes) -> bytes:
    """The JSON answer of `graph` (a `CheckedGraph`) to a JSON request `body`; a request it
    cannot answer is a RequestError."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise RequestError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {first_line(error)}") from None
    if not isinstance(request, dict) or list(request) != ["inputs"]:
        fields = ", ".join(f'"{name}": [...]' for name in graph.inputs)
        message = f'send {{"inputs": {{{fields}}}}} with one row per observation'
        raise RequestError(HTTPStatus.BAD_REQUEST, message)
    try:
        with np.errstate(over="ignore"):  # a number beyond float32 becomes inf: refused below
            inputs = graph.check(request["inputs"])
        for name, array in inputs.items():
            if not np.isfinite(array).all():
                raise ValueError(f"{name} holds numbers beyond float32 (largest {FLOAT32_MAX:.4g})")
    except ValueError as error:
        raise RequestError(HTTPStatus.BAD_REQUEST, first_line(error)) from None
    outputs = graph.session.run(graph.outputs, inputs)  # as graph.run, without checking again
    if len(outputs) > 1:
        answer = {name: array.tolist() for name, array in zip(graph.outputs, outputs, strict=True)}
    else:
        answer = outputs[0].tolist()
    try:
        return json.dumps({"predictions": answer}, allow_nan=False).encode()
    except ValueError:  # NaN or infinity out of finite inputs (huge values): not JSON
        message = (
            "the model's answer to these inputs is not finite (NaN or infinity); "
            "send values of the size the library was trained on"
        )
        raise RequestError(HTTPStatus.BAD_REQUEST, message) from None


def refusal(error: RequestError) -> bytes:
    """The JSON answer of a refused request: its status's name and a one-line message."""
    message = " ".join(str(error).split())
    return json.dumps({"error_code": error.status.name, "message": message}).encode()


async def answer(graph, scope: dict, receive) -> bytes:
    """The JSON answer to one request (an ASGI `scope` and its `receive`), or a RequestError."""
    method, path = scope["method"], scope["path"]
    if path in ("/ping", "/health") and method in ("GET", "HEAD"):
        return b"\n"
    if (method, path) != ("POST", "/invocations"):
        message = f"no {method} {path}; POST /invocations, GET /ping"
        raise RequestError(HTTPStatus.NOT_FOUND, message)
    headers = dict(scope["headers"])  # lower-case names, as ASGI gives them
    try:
        length = int(headers.get(b"content-length", b""))
    except ValueError:
        message = "send a Content-Length header"
        raise RequestError(HTTPStatus.LENGTH_REQUIRED, message, close=True) from None
    if not 0 <= length <= MAX_REQUEST_BYTES:
        message = f"the request has {length:,} bytes; at most {MAX_REQUEST_BYTES:,} are taken"
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, message, close=True)
    chunks, more = [], True
    while more:  # a client gone mid-body ends it short: answered as malformed, to nobody
        event = await receive()
        chunks.append(event.get("body", b""))
        more = event.get("more_body", False)
    content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip()
    if content_type.lower() != "application/json":
        message = f"send JSON with Content-Type: application/json, not {content_type.lower()!r}"
        raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, message)
    return predictions(graph, b"".join(chunks))


def application(graph) -> Callable[..., Awaitable[None]]:
    """The ASGI application answering MLflow's scoring protocol with `graph` (plain ASGI: a
    framework's routing and middleware cost more than the model on one observation)."""

    async def app(scope: dict, receive, send) -> None:
        if scope["type"] != "http":  # no lifespan events are sent, no websockets accepted
            return
        status, close = HTTPStatus.OK, False
        try:
            body = await answer(graph, scope, receive)
        except RequestError as error:
            status, close, body = error.status, error.close, refusal(error)
        except Exception as error:  # onnxruntime failing on a checked request: still one line
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            body = refusal(RequestError(status, first_line(error)))
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


class ModelServer:
    """`graph` served at `host:port`: bound on construction (a taken port is refused at once),
    answering from `serve()` on."""

    def __init__(self, graph, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and without
        # it the answer's headers and body go out 40 ms apart (Nagle's delay)
        self.socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
            self.socket.listen(BACKLOG)
        except OSError as error:
            self.socket.close()
            raise SkillforgeError(
                f"cannot listen on {host} port {port} ({error.strerror or error}); "
                "pick another with --port"
            ) from None
        self.url = url(host, self.socket.getsockname()[1])
        config = uvicorn.Config(
            application(graph),
            backlog=BACKLOG,
            ws="none",
            lifespan="off",
            proxy_headers=False,  # the client's address is never used
            log_config=None,
            log_level="error",  # quiet: no line per request, nor per malformed request
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=3,
        )
        self.server = uvicorn.Server(config)

    def serve(self) -> None:
        """Answer requests until interrupted (Ctrl-C, SIGTERM: the requests under way are
        answered, then KeyboardInterrupt), then free the port."""
        self.server.run(sockets=[self.socket])
