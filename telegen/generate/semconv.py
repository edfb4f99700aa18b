"""Attribute names of the two semantic-convention generations telegen emits.

`stable` follows the current OpenTelemetry semantic conventions (HTTP and
database names stabilised in 2023-2024); `legacy` gives the older names many
backends and dashboards still expect.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SemConv:
    generation: str
    http_method: str
    http_status_code: str
    url_path: str
    url_full: str
    url_scheme: str
    url_query: str
    protocol_version: str
    user_agent: str
    client_address: str
    response_body_size: str
    # Where a server span records its own host/port, and a client span its peer.
    server_host: str
    server_port: str
    peer_host: str
    peer_port: str
    db_system: str
    db_namespace: str
    db_collection: str
    db_operation: str
    db_query: str
    code_function: str
    code_namespace: str
    deployment_environment: str


STABLE = SemConv(
    generation="stable",
    http_method="http.request.method",
    http_status_code="http.response.status_code",
    url_path="url.path",
    url_full="url.full",
    url_scheme="url.scheme",
    url_query="url.query",
    protocol_version="network.protocol.version",
    user_agent="user_agent.original",
    client_address="client.address",
    response_body_size="http.response.body.size",
    server_host="server.address",
    server_port="server.port",
    peer_host="server.address",
    peer_port="server.port",
    db_system="db.system.name",
    db_namespace="db.namespace",
    db_collection="db.collection.name",
    db_operation="db.operation.name",
    db_query="db.query.text",
    code_function="code.function.name",
    code_namespace="code.namespace",
    deployment_environment="deployment.environment.name",
)

LEGACY = SemConv(
    generation="legacy",
    http_method="http.method",
    http_status_code="http.status_code",
    url_path="http.target",
    url_full="http.url",
    url_scheme="http.scheme",
    url_query="http.query",
    protocol_version="http.flavor",
    user_agent="http.user_agent",
    client_address="http.client_ip",
    response_body_size="http.response_content_length",
    server_host="net.host.name",
    server_port="net.host.port",
    peer_host="net.peer.name",
    peer_port="net.peer.port",
    db_system="db.system",
    db_namespace="db.name",
    db_collection="db.sql.table",
    db_operation="db.operation",
    db_query="db.statement",
    code_function="code.function",
    code_namespace="code.namespace",
    deployment_environment="deployment.environment",
)


def semconv(generation: str) -> SemConv:
    return STABLE if generation == "stable" else LEGACY
