"""An independent OTLP/HTTP receiver for tests: the standard library's HTTP
server, every request decoded with the official classes and kept, and a
script that decides each answer (a status, headers, a body, or a dropped
connection), so the sender's handling of each can be checked."""
from __future__ import annotations

import gzip
import ssl
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import zstandard
from conftest import DecodedRequests
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

REQUESTS = {"traces": trace_service_pb2.ExportTraceServiceRequest,
            "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
            "logs": logs_service_pb2.ExportLogsServiceRequest}
RESPONSES = {"traces": trace_service_pb2.ExportTraceServiceResponse,
             "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
             "logs": logs_service_pb2.ExportLogsServiceResponse}
PATHS = {f"/v1/{signal}": signal for signal in REQUESTS}
DROP = "drop"  # an answer: close the connection without a response


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # None: an empty Export*ServiceResponse for 200


@dataclass
class Seen:
    """One request as it arrived."""

    signal: str
    path: str
    headers: dict[str, str]
    client: tuple[str, int]
    body: bytes  # as sent (compressed if it was)


class HttpRecorder(DecodedRequests):
    """Records OTLP/HTTP requests; `script(number, signal)` answers request
    `number` (1-based, over all signals) with an Answer or DROP; default 200."""

    def __init__(self, script: Callable[[int, str], Answer | str] | None = None) -> None:
        self.script = script or (lambda number, signal: Answer())
        self.requests: dict[str, list] = defaultdict(list)  # decoded, answered 200 only
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        body = handler.rfile.read(length)
        signal = PATHS.get(handler.path.split("?")[0], "")
        with self.lock:
            self.seen.append(Seen(signal, handler.path, {k.lower(): v for k, v in handler.headers.items()},
                                  handler.client_address, body))
            number = len(self.seen)
        answer = self.script(number, signal)
        if answer == DROP:
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        assert isinstance(answer, Answer)
        payload = answer.body
        if answer.status == 200:
            encoding = handler.headers.get("Content-Encoding")
            data = gzip.decompress(body) if encoding == "gzip" else \
                zstandard.ZstdDecompressor().decompress(body) if encoding == "zstd" else body
            request = REQUESTS[signal].FromString(data)  # raises on a bad body: the test sees a 500
            with self.lock:
                self.requests[signal].append(request)
            if payload is None:
                payload = RESPONSES[signal]().SerializeToString()
        payload = payload or b""
        handler.send_response(answer.status)
        handler.send_header("Content-Type", "application/x-protobuf")
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def serve_http(recorder: HttpRecorder, tls: ssl.SSLContext | None = None,
               port: int = 0) -> tuple[ThreadingHTTPServer, int]:
    """Serve `recorder` on 127.0.0.1 (port 0: a free one); stop with server.shutdown()."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as OTLP/HTTP clients expect

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            try:
                recorder.handle(self)
            except Exception:
                self.send_error(500)
                raise

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, server.server_address[1]
