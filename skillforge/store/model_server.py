"""An HTTP server of a registered library or agent model (`skillforge serve`): MLflow's
scoring protocol on the model's own checked ONNX graph, run by onnxruntime.

POST /invocations with `{"inputs": {"observation": [[...], ...], "skill": [k, ...]}}`
(Content-Type: application/json) answers `{"predictions": ...}`, as `mlflow models serve`
does; GET /ping and /health answer 200. Every bad request gets a 4xx answer
`{"error_code": ..., "message": ...}` whose message is one line, and the server goes on
serving. Each request runs on its own thread.
"""

from __future__ import annotations

import json
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from skillforge.core.errors import SkillforgeError, first_line
from skillforge.store.ui_server import url

MAX_REQUEST_BYTES = 64 * 2**20
"""The largest request body accepted (about 500,000 Hopper observations as JSON)."""


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
        outputs = graph.run(request["inputs"])
    except ValueError as error:
        raise RequestError(HTTPStatus.BAD_REQUEST, first_line(error)) from None
    if isinstance(outputs, dict):
        answer = {name: array.tolist() for name, array in outputs.items()}
    else:
        answer = outputs.tolist()
    return json.dumps({"predictions": answer}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client may send many requests on one socket
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart
    server: _Server

    def do_GET(self) -> None:
        if self.path in ("/ping", "/health"):
            self._answer(HTTPStatus.OK, b"\n")
        else:
            self._refuse(HTTPStatus.NOT_FOUND, f"no {self.path}; POST /invocations, GET /ping")

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self._refuse(HTTPStatus.NOT_FOUND, f"no {self.path}; POST /invocations")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length header", close=True)
            return
        if not 0 <= length <= MAX_REQUEST_BYTES:
            message = f"the request has {length:,} bytes; at most {MAX_REQUEST_BYTES:,} are taken"
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, message, close=True)
            return
        body = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            message = f"send JSON with Content-Type: application/json, not {content_type!r}"
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, message)
            return
        try:
            self._answer(HTTPStatus.OK, predictions(self.server.graph, body))
        except RequestError as error:
            self._refuse(error.status, str(error))
        except Exception as error:  # onnxruntime failing on a checked request: still one line
            self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR, first_line(error))

    def _refuse(self, status: HTTPStatus, message: str, close: bool = False) -> None:
        body = {"error_code": status.name, "message": " ".join(message.split())}
        self.close_connection = close
        self._answer(status, json.dumps(body).encode())

    def _answer(self, status: HTTPStatus, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        """Quiet: one line per request would drown the terminal."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], graph) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.graph = graph
        super().__init__(address, _Handler)


class ModelServer:
    """`graph` served at `host:port`: bound on construction (a taken port is refused at once),
    answering from `serve()` on."""

    def __init__(self, graph, host: str, port: int) -> None:
        try:
            self.server = _Server((host, port), graph)
        except OSError as error:
            raise SkillforgeError(
                f"cannot listen on {host} port {port} ({error.strerror or error}); "
                "pick another with --port"
            ) from None
        self.url = url(host, self.server.server_address[1])

    def serve(self) -> None:
        """Answer requests until interrupted (Ctrl-C, SIGTERM), then free the port."""
        try:
            self.server.serve_forever()
        finally:
            self.server.server_close()
