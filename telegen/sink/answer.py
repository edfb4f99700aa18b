"""What the sink answers one export request with, whatever carried it: the
carrier-neutral result of `Sink.receive` that the gRPC and HTTP receivers turn
into their own wire form."""
from __future__ import annotations

import math
from dataclasses import dataclass

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.rpc import error_details_pb2, status_pb2

OK = grpc.StatusCode.OK


@dataclass(frozen=True)
class Answer:
    """The outcome of one export request.

    `code` OK: `body` is the serialized Export{Trace,Metrics,Logs}ServiceResponse
    (with `partial_success` when events were rejected). Otherwise `code` is the
    error (from a fault or from validation) and `message` says why;
    `retry_after_s` > 0 asks the client to wait that long before retrying, and
    `drop` asks the carrier to close the connection without any answer where it
    can (HTTP; gRPC answers `code`). `delay_s` > 0 (OK answers, a sink with
    a capacity queue) asks the carrier to wait that long before answering:
    each sleeps its own way, as it does `SinkFaults.delay_ms`.
    """

    code: grpc.StatusCode
    body: bytes = b""
    message: str = ""
    retry_after_s: float = 0
    drop: bool = False
    delay_s: float = 0

    @property
    def ok(self) -> bool:
        return self.code is OK

    @property
    def code_number(self) -> int:
        """The gRPC status code as a number (google.rpc.Code), e.g. 14 for UNAVAILABLE."""
        return self.code.value[0]

    @property
    def retry_after_header(self) -> str | None:
        """`Retry-After` for HTTP: whole seconds, rounded up; None without a delay."""
        return str(math.ceil(self.retry_after_s)) if self.retry_after_s > 0 else None

    def status(self) -> status_pb2.Status:
        """The error as a google.rpc.Status, with a google.rpc.RetryInfo detail
        when a retry delay is asked for."""
        status = status_pb2.Status(code=self.code_number, message=self.message)
        if self.retry_after_s > 0:
            info = error_details_pb2.RetryInfo()
            info.retry_delay.FromNanoseconds(round(self.retry_after_s * 1e9))
            detail = AnyMessage()
            detail.Pack(info)
            status.details.append(detail)
        return status
