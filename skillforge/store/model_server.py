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
from http import HTTPStatus

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from skillforge.core.errors import SkillforgeError, first_line
from skillforge.store.ui_server import url

MAX_REQUEST_BYTES = 64 * 2**20
"""The largest request body accepted (about 500,000 Hopper observations as JSON)."""

BACKLOG = 2048
"""Connections the kernel queues before the server accepts them (uvicorn's default)."""

FLOAT32_MAX = float(np.finfo(np.float32).max)


class RequestError(Exception):
    """A request the model cannot answer: an HTTP status and a one-line message."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


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
                raise ValueError(f"{name} holds numbers beyond float32 (±{FLOAT32_MAX:.4g})")
        outputs = graph.run(inputs)  # checks the arrays again: a few µs
    except ValueError as error:
        raise RequestError(HTTPStatus.BAD_REQUEST, first_line(error)) from None
    if isinstance(outputs, dict):
        answer = {name: array.tolist() for name, array in outputs.items()}
    else:
        answer = outputs.tolist()
    try:
        return json.dumps({"predictions": answer}, allow_nan=False).encode()
    except ValueError:  # NaN or infinity out of finite inputs (huge values): not JSON
        message = (
            "the model's answer to these inputs is not finite (NaN or infinity); "
            "send values of the size the library was trained on"
        )
        raise RequestError(HTTPStatus.BAD_REQUEST, message) from None


def refusal(status: HTTPStatus, message: str, close: bool = False, headers=None) -> Response:
    """A JSON error answer whose message is one line; `close` ends the connection."""
    body = {"error_code": status.name, "message": " ".join(message.split())}
    headers = {**(headers or {}), **({"Connection": "close"} if close else {})}
    return Response(json.dumps(body), status, headers, media_type="application/json")


def application(graph) -> Starlette:
    """The ASGI application answering MLflow's scoring protocol with `graph`."""

    async def invocations(request: Request) -> Response:
        try:
            length = int(request.headers.get("Content-Length", ""))
        except ValueError:
            return refusal(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length header", close=True)
        if not 0 <= length <= MAX_REQUEST_BYTES:
            message = f"the request has {length:,} bytes; at most {MAX_REQUEST_BYTES:,} are taken"
            return refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, message, close=True)
        body = await request.body()
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            message = f"send JSON with Content-Type: application/json, not {content_type!r}"
            return refusal(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, message)
        try:
            return Response(predictions(graph, body), media_type="application/json")
        except RequestError as error:
            return refusal(error.status, str(error))
        except Exception as error:  # onnxruntime failing on a checked request: still one line
            return refusal(HTTPStatus.INTERNAL_SERVER_ERROR, first_line(error))

    async def ping(request: Request) -> Response:
        return Response(b"\n", media_type="application/json")

    async def not_served(request: Request, error: HTTPException) -> Response:
        message = f"no {request.method} {request.url.path}; POST /invocations, GET /ping"
        return refusal(HTTPStatus(error.status_code), message, headers=error.headers)

    routes = [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
    ]
    handlers = {HTTPStatus.NOT_FOUND: not_served, HTTPStatus.METHOD_NOT_ALLOWED: not_served}
    return Starlette(routes=routes, exception_handlers=handlers)


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
            log_config=None,
            log_level="error",  # quiet: no line per request, nor per malformed request
            access_log=False,
            timeout_graceful_shutdown=3,
        )
        self.server = uvicorn.Server(config)

    def serve(self) -> None:
        """Answer requests until interrupted (Ctrl-C, SIGTERM: the requests under way are
        answered, then KeyboardInterrupt), then free the port."""
        self.server.run(sockets=[self.socket])
