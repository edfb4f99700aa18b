"""Vocabularies for generated logs: message templates, their variable parts,
exceptions per language, HTTP traffic shapes and host/node events.

Templates use `str.format` fields. Every field names a filler in `FILLERS`,
which turns one uniform draw in [0, 1) into a realistic value, so a record's
variable parts come from a single bulk numpy draw. No filler ever produces a
date, a clock time or a number of ten or more digits: bodies must not carry
anything a backend could read as a timestamp.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

Filler = Callable[[float], str]


def _pick(options: tuple[str, ...]) -> Filler:
    return lambda u: options[int(u * len(options))]


def _int(low: int, high: int) -> Filler:
    return lambda u: str(low + int(u * (high - low + 1)))


def _skewed_int(low: int, high: int, power: float = 3.0) -> Filler:
    """Mostly near `low`, with a long tail towards `high` (latencies, sizes)."""
    return lambda u: str(low + int((u**power) * (high - low)))


_MASK64 = (1 << 64) - 1


def _bits(u: float, salt: int) -> int:
    """64 well-mixed bits from one draw (the splitmix64 finalizer), so parts
    of one value (an address's octets, a pod name's two hashes) look independent."""
    x = (int(u * 2**53) + salt * 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


# Kubernetes' alphabet for generated name suffixes (no vowels, no 0/1/3).
_K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _k8s_suffix(bits: int, width: int) -> str:
    """A Kubernetes-style random suffix; it starts with a letter so it can
    never read as a long number."""
    chars = [_K8S_ALPHABET[bits % 20]]
    for _ in range(width - 1):
        bits //= 27
        chars.append(_K8S_ALPHABET[bits % 27])
    return "".join(chars)


def _pod_hash(u: float) -> str:
    """ReplicaSet hash and pod suffix, as in `checkout-7d9f8c6b5-x2k4p`."""
    return f"{_k8s_suffix(_bits(u, 1), 10)}-{_k8s_suffix(_bits(u, 2), 5)}"


def _internal_ip(u: float) -> str:
    b = _bits(u, 3)
    return f"10.{(b >> 8) % 256}.{(b >> 16) % 256}.{1 + (b >> 24) % 254}"


def _client_ip(u: float) -> str:
    """Mostly private addresses behind the load balancer, some public ones."""
    b = _bits(u, 3)
    if b % 5 < 3:
        return _internal_ip(u)
    first = (31, 46, 73, 84, 92, 109, 151, 176, 185, 203)[(b >> 8) % 10]
    return f"{first}.{(b >> 16) % 256}.{(b >> 24) % 256}.{1 + (b >> 32) % 254}"


def _hex(width: int) -> Filler:
    return lambda u: format(int(u * 16**width), f"0{width}x")


_UPSTREAMS = (
    "payment-service", "inventory-service", "user-service", "order-service",
    "pricing-service", "shipping-service", "fraud-service", "catalog-service",
)
_DB_HOSTS = (
    "postgres-primary.data.svc.cluster.local", "postgres-replica-1.data.svc.cluster.local",
    "orders-db.cluster-ro.internal", "mysql-0.mysql.data.svc.cluster.local",
    "redis-master.cache.svc.cluster.local", "mongo-1.mongo.data.svc.cluster.local",
)

FILLERS: dict[str, Filler] = {
    "user_id": _int(10_000, 9_999_999),
    "order_id": _int(100_000, 99_999_999),
    "cart_id": _hex(8),
    "sku": lambda u: f"SKU-{10_000 + int(u * 90_000)}",
    "qty": _skewed_int(1, 40),
    "items": _skewed_int(1, 25),
    "amount": lambda u: f"{1.5 + (u**2) * 1_200:.2f}",
    "currency": _pick(("USD", "USD", "USD", "EUR", "EUR", "GBP", "JPY", "CAD")),
    "duration_ms": _skewed_int(1, 4_800),
    "slow_ms": _int(1_200, 29_000),
    "timeout_ms": _pick(("500", "1000", "2000", "3000", "5000", "10000", "30000")),
    "timeout_s": _pick(("1", "2", "5", "10", "30")),
    "attempt": _int(1, 5),
    "max_retries": _pick(("3", "5", "5", "10")),
    "backoff_ms": _pick(("100", "200", "400", "800", "1600", "3200")),
    "cache_key": lambda u: (
        ("user", "product", "cart", "session", "price", "inventory", "quote")[int(u * 7)]
        + ":" + format(_bits(u, 4) % 16**7, "07x")
    ),
    "ttl_s": _pick(("30", "60", "300", "600", "3600", "86400")),
    "upstream": _pick(_UPSTREAMS),
    "db_host": _pick(_DB_HOSTS),
    "table": _pick(("orders", "order_items", "users", "payments", "inventory", "shipments", "sessions", "carts")),
    "rows": _skewed_int(0, 5_000),
    "pool_active": _int(40, 50),
    "pool_max": _pick(("50",)),
    "pool_waiting": _int(1, 120),
    "ip": _internal_ip,
    "client_ip": _client_ip,
    "port": _pick(("5432", "6379", "3306", "8080", "9092", "27017", "443")),
    "request_id": _hex(8),
    "session_id": _hex(8),
    "token_prefix": _hex(6),
    "email_domain": _pick(("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "example.org")),
    "topic": _pick(("orders.created", "orders.paid", "payments.settled", "inventory.reserved",
                    "shipments.dispatched", "users.signed-up", "notifications.email")),
    "partition": _int(0, 23),
    "offset": _int(10_000, 999_999_999),
    "lag": _skewed_int(0, 250_000),
    "batch": _pick(("10", "25", "50", "100", "250", "500", "1000")),
    "queue": _pick(("email-dispatch", "order-fulfilment", "payment-retries", "search-indexing", "thumbnail-jobs")),
    "pct": lambda u: f"{70 + u * 29:.1f}",
    "heap_mb": _int(900, 3_900),
    "heap_max_mb": _pick(("2048", "4096")),
    "gc_ms": _skewed_int(20, 2_400),
    "status": _pick(("500", "502", "503", "503", "504")),
    "client_status": _pick(("400", "401", "403", "404", "404", "409", "422", "429")),
    "warehouse": _pick(("FRA1", "AMS2", "IAD3", "SFO1", "LHR4", "SIN1")),
    "carrier": _pick(("ups", "fedex", "dhl", "usps", "royal-mail")),
    "tracking": lambda u: f"1Z{format(int(u * 16**8), '08X')}",
    "payment_method": _pick(("card", "card", "card", "paypal", "apple_pay", "google_pay", "sepa_debit")),
    "card_brand": _pick(("visa", "mastercard", "amex", "discover")),
    "decline_reason": _pick(("insufficient_funds", "card_declined", "expired_card", "incorrect_cvc",
                             "do_not_honor", "suspected_fraud")),
    "risk": lambda u: f"{u:.2f}",
    "query": _pick(("running shoes", "wireless headphones", "coffee grinder", "usb-c hub",
                    "yoga mat", "winter jacket", "standing desk", "office chair")),
    "hits": _skewed_int(0, 12_000),
    "route": _pick(("/api/v1/orders", "/api/v1/cart", "/api/v1/users/me", "/api/v1/products",
                    "/api/v1/checkout", "/api/v1/payments", "/api/v1/search")),
    "method": _pick(("GET", "GET", "GET", "POST", "PUT", "DELETE")),
    "rate": _pick(("100", "200", "500", "1000")),
    "feature": _pick(("new-checkout-flow", "recommendations-v2", "one-click-buy", "dark-mode", "fast-shipping")),
    "version": _pick(("1.14.2", "1.15.0", "2.3.1", "2.4.0", "3.0.7")),
    "template": _pick(("order_confirmation", "password_reset", "shipping_update", "welcome", "receipt")),
    "provider": _pick(("ses", "sendgrid", "mailgun", "twilio", "fcm")),
    "field": _pick(("email", "quantity", "shipping_address.postcode", "currency", "phone", "card.expiry")),
    "role": _pick(("customer", "customer", "admin", "support", "merchant")),
}


class AppTemplate(NamedTuple):
    """One application log message. `function` is the code location that
    logs it; `kind` (ERROR templates only) selects the language's exception."""

    text: str
    function: str
    kind: str = ""


# Messages any backend service writes, whatever its domain.
GENERIC_TEMPLATES: dict[str, tuple[AppTemplate, ...]] = {
    "DEBUG": (
        AppTemplate("Cache hit for key {cache_key} (ttl {ttl_s}s)", "getCached"),
        AppTemplate("Cache miss for key {cache_key}, loading from {db_host}", "getCached"),
        AppTemplate("Executing query on {table}: {rows} rows in {duration_ms}ms", "executeQuery"),
        AppTemplate("Acquired connection from pool (active={pool_active}, max={pool_max})", "acquireConnection"),
        AppTemplate("Outgoing request {method} http://{upstream}:8080{route} request_id={request_id}", "send"),
        AppTemplate("Response from {upstream} received in {duration_ms}ms", "send"),
        AppTemplate("Deserialized payload of {items} items for request {request_id}", "decodeBody"),
        AppTemplate("Feature flag {feature} evaluated to true for user {user_id}", "evaluateFlag"),
        AppTemplate("Session {session_id} refreshed for user {user_id}", "refreshSession"),
        AppTemplate("Polled {batch} messages from {topic} partition {partition} at offset {offset}", "poll"),
        AppTemplate("Committed offset {offset} for {topic} partition {partition}", "commitOffsets"),
        AppTemplate("Resolved {upstream} to {ip}:{port}", "resolve"),
        AppTemplate("Retry policy for {upstream}: max_retries={max_retries}, backoff={backoff_ms}ms", "configureRetry"),
        AppTemplate("Request {request_id} authenticated as user {user_id} with role {role}", "authenticate"),
        AppTemplate("Evicted {rows} expired entries from local cache", "evictExpired"),
        AppTemplate("Rate limiter state for user {user_id}: {qty} tokens left of {rate}", "tryAcquire"),
    ),
    "INFO": (
        AppTemplate("Handled {method} {route} for user {user_id} in {duration_ms}ms", "handle"),
        AppTemplate("Request {request_id} completed in {duration_ms}ms", "handle"),
        AppTemplate("Connected to {db_host}:{port}", "connect"),
        AppTemplate("Consumer joined group on {topic}, assigned partitions {partition}", "onPartitionsAssigned"),
        AppTemplate("Published event to {topic} (partition {partition}, offset {offset})", "publish"),
        AppTemplate("Processed batch of {batch} messages from {queue} in {duration_ms}ms", "processBatch"),
        AppTemplate("Cache warmed with {rows} entries in {duration_ms}ms", "warmCache"),
        AppTemplate("User {user_id} logged in from {client_ip}", "login"),
        AppTemplate("Scheduled job {queue} finished: {rows} records processed", "runJob"),
        AppTemplate("Feature flag {feature} enabled for {pct}% of traffic", "refreshFlags"),
        AppTemplate("Configuration reloaded, {items} keys changed", "reloadConfig"),
        AppTemplate("Circuit breaker for {upstream} closed after successful probe", "onStateChange"),
        AppTemplate("Connection pool resized to {pool_max} connections", "resizePool"),
        AppTemplate("Upstream {upstream} healthy again ({duration_ms}ms)", "checkHealth"),
        AppTemplate("Migration check passed: schema is at version {version}", "verifySchema"),
        AppTemplate("Accepted job {request_id} on queue {queue}", "enqueue"),
    ),
    "WARN": (
        AppTemplate("Slow query on {table} took {slow_ms}ms ({rows} rows)", "executeQuery"),
        AppTemplate("Retrying request to {upstream} (attempt {attempt}/{max_retries}) after {backoff_ms}ms", "send"),
        AppTemplate("Connection pool nearly exhausted: active={pool_active}, max={pool_max}, waiting={pool_waiting}",
                    "acquireConnection"),
        AppTemplate("Upstream {upstream} responded {status}, serving cached response", "send"),
        AppTemplate("Circuit breaker for {upstream} is OPEN, failing fast", "onStateChange"),
        AppTemplate("Consumer lag on {topic} partition {partition} is {lag} messages", "checkLag"),
        AppTemplate("Heap usage at {pct}% ({heap_mb}MB of {heap_max_mb}MB)", "checkMemory"),
        AppTemplate("GC pause of {gc_ms}ms exceeded threshold", "onGarbageCollection"),
        AppTemplate("Rate limit exceeded for user {user_id} on {route} (limit {rate}/min)", "tryAcquire"),
        AppTemplate("Cache {cache_key} unavailable, falling back to {db_host}", "getCached"),
        AppTemplate("Request {request_id} rejected: {client_status} on {method} {route}", "handle"),
        AppTemplate("Validation failed for field {field} in request {request_id}", "validate"),
        AppTemplate("Deprecated endpoint {route} called by user {user_id}", "handle"),
        AppTemplate("Token {token_prefix}... for user {user_id} expired, forcing re-authentication", "authenticate"),
        AppTemplate("Job {request_id} on {queue} exceeded soft timeout of {timeout_s}s", "runJob"),
        AppTemplate("DNS resolution for {upstream} took {slow_ms}ms", "resolve"),
    ),
    "ERROR": (
        AppTemplate("Request to {upstream} failed after {max_retries} retries", "send", "timeout"),
        AppTemplate("Timed out after {timeout_ms}ms waiting for {upstream}", "send", "timeout"),
        AppTemplate("Request {request_id} failed: upstream {upstream} deadline exceeded", "handle", "timeout"),
        AppTemplate("Database error on {table} while handling request {request_id}", "executeQuery", "database"),
        AppTemplate("Transaction rolled back on {table} for user {user_id}", "commit", "database"),
        AppTemplate("Failed to run migration check against {db_host}", "verifySchema", "database"),
        AppTemplate("Could not connect to {db_host}:{port}", "connect", "connection"),
        AppTemplate("Lost connection to broker while publishing to {topic}", "publish", "connection"),
        AppTemplate("Cache backend {db_host} unreachable", "getCached", "connection"),
        AppTemplate("gRPC call to {upstream} failed", "invoke", "unavailable"),
        AppTemplate("Upstream {upstream} unavailable, returning {status} for {route}", "handle", "unavailable"),
        AppTemplate("Failed to process message at offset {offset} on {topic}", "processMessage", "invalid"),
        AppTemplate("Rejected malformed payload for request {request_id}", "decodeBody", "invalid"),
        AppTemplate("Unhandled exception while processing {method} {route}", "handle", "internal"),
        AppTemplate("Job {request_id} on {queue} crashed", "runJob", "internal"),
        AppTemplate("Failed to serialize response for request {request_id}", "encodeBody", "internal"),
    ),
}

# Messages that only make sense in one business domain.
DOMAIN_TEMPLATES: dict[str, dict[str, tuple[AppTemplate, ...]]] = {
    "orders": {
        "DEBUG": (
            AppTemplate("Loaded order {order_id} with {items} line items", "findOrder"),
            AppTemplate("Computed order total {amount} {currency} for order {order_id}", "computeTotal"),
        ),
        "INFO": (
            AppTemplate("Order {order_id} placed by user {user_id}: {items} items, total {amount} {currency}", "placeOrder"),
            AppTemplate("Order {order_id} status changed to PAID", "updateStatus"),
            AppTemplate("Order {order_id} cancelled by user {user_id}", "cancelOrder"),
        ),
        "WARN": (
            AppTemplate("Order {order_id} stuck in PENDING_PAYMENT, re-queuing", "reconcile"),
            AppTemplate("Duplicate submission for order {order_id} ignored (idempotency key {request_id})", "placeOrder"),
        ),
        "ERROR": (
            AppTemplate("Failed to place order {order_id} for user {user_id}", "placeOrder", "database"),
            AppTemplate("Payment call for order {order_id} timed out", "requestPayment", "timeout"),
        ),
    },
    "payments": {
        "DEBUG": (
            AppTemplate("Tokenized {card_brand} card for user {user_id}", "tokenize"),
            AppTemplate("Fraud score {risk} for order {order_id}", "scoreRisk"),
        ),
        "INFO": (
            AppTemplate("Payment authorized for order {order_id}: {amount} {currency} via {payment_method}", "authorize"),
            AppTemplate("Refund issued for order {order_id}: {amount} {currency}", "refund"),
            AppTemplate("Captured {amount} {currency} for order {order_id}", "capture"),
        ),
        "WARN": (
            AppTemplate("Payment declined for order {order_id}: {decline_reason}", "authorize"),
            AppTemplate("High fraud score {risk} for user {user_id}, sending to manual review", "scoreRisk"),
        ),
        "ERROR": (
            AppTemplate("Payment provider timeout authorizing order {order_id} ({amount} {currency})", "authorize", "timeout"),
            AppTemplate("Failed to record payment for order {order_id} in ledger", "recordPayment", "database"),
        ),
    },
    "users": {
        "DEBUG": (
            AppTemplate("Loaded profile for user {user_id} from cache {cache_key}", "getProfile"),
            AppTemplate("Password hash verified for user {user_id} in {duration_ms}ms", "verifyPassword"),
        ),
        "INFO": (
            AppTemplate("New user {user_id} registered with an {email_domain} address", "register"),
            AppTemplate("Issued access token {token_prefix}... for user {user_id} (expires in {ttl_s}s)", "issueToken"),
            AppTemplate("User {user_id} updated profile field {field}", "updateProfile"),
        ),
        "WARN": (
            AppTemplate("Failed login for user {user_id} from {client_ip} (attempt {attempt}/{max_retries})", "login"),
            AppTemplate("Account {user_id} locked after repeated failed logins", "lockAccount"),
        ),
        "ERROR": (
            AppTemplate("Could not load profile for user {user_id}", "getProfile", "database"),
            AppTemplate("Token signing failed for user {user_id}", "issueToken", "internal"),
        ),
    },
    "inventory": {
        "DEBUG": (
            AppTemplate("Stock level for {sku} at {warehouse}: {qty}", "getStock"),
            AppTemplate("Price for {sku} resolved from cache {cache_key}", "getPrice"),
        ),
        "INFO": (
            AppTemplate("Reserved {qty} units of {sku} for order {order_id}", "reserve"),
            AppTemplate("Released reservation of {qty} units of {sku} for order {order_id}", "release"),
            AppTemplate("Restocked {sku} at {warehouse}: +{qty} units", "restock"),
        ),
        "WARN": (
            AppTemplate("Low stock for {sku} at {warehouse}: {qty} units left", "checkThreshold"),
            AppTemplate("Reservation for order {order_id} expired, releasing {qty} units of {sku}", "expireReservations"),
        ),
        "ERROR": (
            AppTemplate("Failed to reserve {sku} for order {order_id}", "reserve", "database"),
            AppTemplate("Stock sync with {warehouse} failed", "syncWarehouse", "unavailable"),
        ),
    },
    "shipping": {
        "DEBUG": (
            AppTemplate("Rate quote from {carrier} for order {order_id}: {amount} {currency}", "quoteRate"),
            AppTemplate("Address for order {order_id} normalized", "normalizeAddress"),
        ),
        "INFO": (
            AppTemplate("Shipment created for order {order_id} with {carrier}, tracking {tracking}", "createShipment"),
            AppTemplate("Order {order_id} dispatched from {warehouse}", "dispatch"),
            AppTemplate("Tracking {tracking} delivered", "onCarrierEvent"),
        ),
        "WARN": (
            AppTemplate("Carrier {carrier} quote slow ({slow_ms}ms), using fallback rate", "quoteRate"),
            AppTemplate("Shipment {tracking} delayed at {warehouse}", "onCarrierEvent"),
        ),
        "ERROR": (
            AppTemplate("Label generation with {carrier} failed for order {order_id}", "createLabel", "unavailable"),
            AppTemplate("Carrier webhook for {tracking} could not be parsed", "onCarrierEvent", "invalid"),
        ),
    },
    "notifications": {
        "DEBUG": (
            AppTemplate("Rendered template {template} for user {user_id}", "render"),
            AppTemplate("Dequeued {batch} notifications from {queue}", "poll"),
        ),
        "INFO": (
            AppTemplate("Sent {template} email to user {user_id} via {provider}", "sendEmail"),
            AppTemplate("Push notification delivered to user {user_id} via {provider}", "sendPush"),
        ),
        "WARN": (
            AppTemplate("Provider {provider} throttled us, retrying in {backoff_ms}ms", "sendEmail"),
            AppTemplate("Email to user {user_id} bounced ({email_domain})", "onBounce"),
        ),
        "ERROR": (
            AppTemplate("Failed to send {template} to user {user_id} via {provider}", "sendEmail", "timeout"),
        ),
    },
    "search": {
        "DEBUG": (
            AppTemplate("Query '{query}' rewritten with {items} synonyms", "rewriteQuery"),
            AppTemplate("Index shard {partition} answered in {duration_ms}ms", "queryShard"),
        ),
        "INFO": (
            AppTemplate("Search '{query}' returned {hits} hits in {duration_ms}ms", "search"),
            AppTemplate("Reindexed {rows} products in {duration_ms}ms", "reindex"),
        ),
        "WARN": (
            AppTemplate("Search '{query}' took {slow_ms}ms, partial results returned", "search"),
            AppTemplate("Index shard {partition} lagging by {lag} documents", "checkReplication"),
        ),
        "ERROR": (
            AppTemplate("Search backend query for '{query}' failed", "search", "unavailable"),
        ),
    },
    "cart": {
        "DEBUG": (
            AppTemplate("Loaded cart {cart_id} for user {user_id} ({items} items)", "getCart"),
        ),
        "INFO": (
            AppTemplate("Added {qty} x {sku} to cart {cart_id}", "addItem"),
            AppTemplate("Cart {cart_id} checked out as order {order_id}", "checkout"),
        ),
        "WARN": (
            AppTemplate("Cart {cart_id} references discontinued {sku}, removing it", "revalidate"),
        ),
        "ERROR": (
            AppTemplate("Could not persist cart {cart_id} for user {user_id}", "saveCart", "connection"),
        ),
    },
    "gateway": {
        "DEBUG": (
            AppTemplate("Routing {method} {route} to {upstream}", "route"),
            AppTemplate("JWT for user {user_id} validated in {duration_ms}ms", "validateToken"),
        ),
        "INFO": (
            AppTemplate("Route table refreshed: {items} routes", "refreshRoutes"),
        ),
        "WARN": (
            AppTemplate("Upstream {upstream} slow: {slow_ms}ms for {method} {route}", "proxy"),
            AppTemplate("Rejected request {request_id}: invalid token", "validateToken"),
        ),
        "ERROR": (
            AppTemplate("Proxying {method} {route} to {upstream} failed", "proxy", "unavailable"),
        ),
    },
}

# Service-name keywords -> business domain; checked in this order.
DOMAIN_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("gateway", "gateway"), ("payment", "payments"), ("billing", "payments"), ("ledger", "payments"),
    ("fraud", "payments"), ("order", "orders"), ("quote", "orders"), ("cart", "cart"),
    ("user", "users"), ("auth", "users"), ("profile", "users"), ("session", "users"),
    ("inventory", "inventory"), ("catalog", "inventory"), ("pricing", "inventory"),
    ("shipping", "shipping"), ("notification", "notifications"), ("email", "notifications"),
    ("search", "search"), ("recommendation", "search"),
)


def service_domain(service: str) -> str:
    for keyword, domain in DOMAIN_KEYWORDS:
        if keyword in service:
            return domain
    return ""


class ExceptionInfo(NamedTuple):
    type: str
    message: str


class Language(NamedTuple):
    name: str  # telemetry.sdk.language
    sdk_version: str
    scope: str  # the log bridge that emits the records
    scope_version: str
    exceptions: dict[str, ExceptionInfo]  # by AppTemplate.kind


LANGUAGES: dict[str, Language] = {
    "java": Language("java", "1.42.1", "io.opentelemetry.logback-appender-1.0", "2.8.0-alpha", {
        "timeout": ExceptionInfo("java.net.SocketTimeoutException", "Read timed out"),
        "database": ExceptionInfo("org.postgresql.util.PSQLException",
                               "ERROR: could not serialize access due to concurrent update"),
        "connection": ExceptionInfo("java.net.ConnectException", "Connection refused: {db_host}/{ip}:{port}"),
        "unavailable": ExceptionInfo("io.grpc.StatusRuntimeException", "UNAVAILABLE: io exception"),
        "invalid": ExceptionInfo("com.fasterxml.jackson.core.JsonParseException",
                              "Unexpected character ('<' (code 60)): expected a valid value"),
        "internal": ExceptionInfo("java.lang.NullPointerException",
                               'Cannot invoke "String.length()" because "value" is null'),
    }),
    "python": Language("python", "1.27.0", "opentelemetry.sdk._logs", "1.27.0", {
        "timeout": ExceptionInfo("requests.exceptions.ReadTimeout",
                              "HTTPConnectionPool(host='{upstream}', port=8080): Read timed out. "
                              "(read timeout={timeout_s})"),
        "database": ExceptionInfo("psycopg2.OperationalError",
                               "server closed the connection unexpectedly"),
        "connection": ExceptionInfo("ConnectionRefusedError", "[Errno 111] Connection refused"),
        "unavailable": ExceptionInfo("grpc.RpcError",
                                  "StatusCode.UNAVAILABLE: failed to connect to all addresses"),
        "invalid": ExceptionInfo("pydantic.ValidationError", "1 validation error for Request: {field} field required"),
        "internal": ExceptionInfo("KeyError", "'{field}'"),
    }),
    "go": Language("go", "1.31.0", "go.opentelemetry.io/contrib/bridges/otelslog", "0.6.0", {
        "timeout": ExceptionInfo("context.DeadlineExceeded", "context deadline exceeded"),
        "database": ExceptionInfo("*pgconn.PgError", "ERROR: deadlock detected (SQLSTATE 40P01)"),
        "connection": ExceptionInfo("*net.OpError", "dial tcp {ip}:{port}: connect: connection refused"),
        "unavailable": ExceptionInfo("*status.Error",
                                  "rpc error: code = Unavailable desc = connection error"),
        "invalid": ExceptionInfo("*json.SyntaxError", "invalid character '<' looking for beginning of value"),
        "internal": ExceptionInfo("runtime.Error",
                               "runtime error: invalid memory address or nil pointer dereference"),
    }),
    "nodejs": Language("nodejs", "1.27.0", "@opentelemetry/winston-transport", "0.7.0", {
        "timeout": ExceptionInfo("TimeoutError", "The operation was aborted due to timeout"),
        "database": ExceptionInfo("DatabaseError", "deadlock detected"),
        "connection": ExceptionInfo("Error", "connect ECONNREFUSED {ip}:{port}"),
        "unavailable": ExceptionInfo("Error", "14 UNAVAILABLE: No connection established"),
        "invalid": ExceptionInfo("SyntaxError", "Unexpected token '<', \"<html>\" is not valid JSON"),
        "internal": ExceptionInfo("TypeError", "Cannot read properties of undefined (reading 'id')"),
    }),
    "dotnet": Language("dotnet", "1.9.0", "Microsoft.Extensions.Logging", "8.0.0", {
        "timeout": ExceptionInfo("System.Threading.Tasks.TaskCanceledException",
                              "The request was canceled due to the configured HttpClient.Timeout of "
                              "{timeout_s} seconds elapsing."),
        "database": ExceptionInfo("Npgsql.PostgresException", "40P01: deadlock detected"),
        "connection": ExceptionInfo("System.Net.Sockets.SocketException", "Connection refused ({ip}:{port})"),
        "unavailable": ExceptionInfo("Grpc.Core.RpcException",
                                  'Status(StatusCode="Unavailable", Detail="Error connecting to subchannel.")'),
        "invalid": ExceptionInfo("System.Text.Json.JsonException",
                              "'<' is an invalid start of a value. Path: $ | LineNumber: 0"),
        "internal": ExceptionInfo("System.NullReferenceException",
                               "Object reference not set to an instance of an object."),
    }),
}

# The implementation language of well-known service names; others cycle
# through LANGUAGE_CYCLE by position so the mix stays polyglot.
SERVICE_LANGUAGES: dict[str, str] = {
    "api-gateway": "go", "user-service": "java", "order-service": "java",
    "payment-service": "python", "inventory-service": "go", "shipping-service": "nodejs",
    "notification-service": "python", "search-service": "java", "recommendation-service": "python",
    "auth-service": "go", "cart-service": "dotnet", "catalog-service": "java",
    "email-service": "nodejs", "fraud-service": "python",
}
LANGUAGE_CYCLE: tuple[str, ...] = ("java", "go", "python", "nodejs", "dotnet")

# --- HTTP access logs ----------------------------------------------------------

HTTP_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "DELETE", "PATCH")
HTTP_METHOD_WEIGHTS: tuple[float, ...] = (0.76, 0.14, 0.05, 0.03, 0.02)


class Route(NamedTuple):
    """A path pattern (fields as in FILLERS) and the typical size of a 200 body."""

    path: str
    body_bytes: int


ROUTES: dict[str, tuple[Route, ...]] = {
    "GET": (
        Route("/api/v1/products/{sku}", 2_400), Route("/api/v1/products", 18_000),
        Route("/api/v1/orders/{order_id}", 1_800), Route("/api/v1/users/{user_id}", 900),
        Route("/api/v1/users/{user_id}/orders", 6_500), Route("/api/v1/cart/{cart_id}", 1_200),
        Route("/api/v1/search", 24_000), Route("/api/v1/recommendations/{user_id}", 4_000),
        Route("/static/js/app.{cart_id}.js", 180_000), Route("/static/css/main.{cart_id}.css", 42_000),
        Route("/images/products/{sku}.webp", 65_000), Route("/", 14_000),
        Route("/healthz", 2), Route("/favicon.ico", 1_150),
    ),
    "POST": (
        Route("/api/v1/orders", 850), Route("/api/v1/cart/{cart_id}/items", 1_100),
        Route("/api/v1/checkout", 1_400), Route("/api/v1/payments", 600),
        Route("/api/v1/auth/login", 720), Route("/api/v1/events", 2),
    ),
    "PUT": (
        Route("/api/v1/users/{user_id}", 900), Route("/api/v1/cart/{cart_id}/items/{sku}", 1_100),
        Route("/api/v1/users/{user_id}/addresses/{qty}", 400),
    ),
    "DELETE": (
        Route("/api/v1/cart/{cart_id}/items/{sku}", 0), Route("/api/v1/sessions/{session_id}", 0),
        Route("/api/v1/users/{user_id}/addresses/{qty}", 0),
    ),
    "PATCH": (
        Route("/api/v1/orders/{order_id}", 1_800), Route("/api/v1/users/{user_id}/preferences", 350),
    ),
}

# Success codes per method, with weights: reads revalidate and redirect,
# creates answer 201, deletes 204.
SUCCESS_STATUSES: dict[str, tuple[tuple[int, float], ...]] = {
    "GET": ((200, 0.88), (304, 0.08), (301, 0.03), (302, 0.01)),
    "POST": ((201, 0.55), (200, 0.43), (302, 0.02)),
    "PUT": ((200, 0.75), (204, 0.25)),
    "DELETE": ((204, 0.85), (200, 0.15)),
    "PATCH": ((200, 0.9), (204, 0.1)),
}
CLIENT_ERROR_STATUSES: tuple[tuple[int, float], ...] = (
    (404, 0.42), (400, 0.16), (401, 0.14), (403, 0.09), (429, 0.1), (409, 0.04), (422, 0.05),
)
SERVER_ERROR_STATUSES: tuple[tuple[int, float], ...] = ((500, 0.4), (502, 0.25), (503, 0.25), (504, 0.1))
CLIENT_ERROR_RATE = 0.06
SERVER_ERROR_RATE = 0.015

# network.protocol.version values and the request-line form a server logs.
PROTOCOLS: tuple[tuple[str, str, float], ...] = (("1.1", "HTTP/1.1", 0.62), ("2", "HTTP/2.0", 0.36),
                                                 ("1.0", "HTTP/1.0", 0.02))

USER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
    "okhttp/4.12.0",
    "ShopApp/5.3.1 (iOS 17.4; iPhone15,2)",
    "python-requests/2.31.0",
    "Go-http-client/2.0",
    "curl/8.5.0",
    "kube-probe/1.29",
)

# --- System logs ----------------------------------------------------------------


class SystemEvent(NamedTuple):
    event_type: str
    source: str  # log.source
    severity: str
    text: str
    weight: float


SYSTEM_EVENTS: tuple[SystemEvent, ...] = (
    SystemEvent("startup", "systemd", "INFO", "Started containerd.service - containerd container runtime.", 3),
    SystemEvent("startup", "systemd", "INFO", "Started kubelet.service - kubelet: The Kubernetes Node Agent.", 3),
    SystemEvent("startup", "kubelet", "INFO", 'Started container "{upstream}" in pod "shop/{upstream}-{pod_hash}"', 5),
    SystemEvent("startup", "app", "INFO", "{upstream} {version} started in {duration_ms}ms, listening on :8080", 5),
    SystemEvent("shutdown", "systemd", "INFO", "Stopping kubelet.service - kubelet: The Kubernetes Node Agent...", 2),
    SystemEvent("shutdown", "kubelet", "INFO", 'Killing container "{upstream}" with a grace period of 30s', 4),
    SystemEvent("shutdown", "app", "INFO", "Received SIGTERM, draining {pool_waiting} in-flight requests", 4),
    SystemEvent("shutdown", "containerd", "WARN", "shim disconnected for task {cart_id}, cleaning up dead shim", 2),
    SystemEvent("resource_alert", "kubelet", "WARN", "Memory usage of node at {pct}% of allocatable", 5),
    SystemEvent("resource_alert", "kubelet", "WARN", "CPU throttling for container \"{upstream}\" at {pct}%", 5),
    SystemEvent("resource_alert", "kernel", "WARN",
                "TCP: request_sock_TCP: Possible SYN flooding on port 8080. Sending cookies.", 2),
    SystemEvent("resource_alert", "kernel", "ERROR", "nf_conntrack: table full, dropping packet", 1),
    SystemEvent("resource_alert", "app", "WARN", "File descriptor usage at {pct}% of limit", 3),
    SystemEvent("health_check_failed", "kubelet", "WARN",
                'Readiness probe failed for pod "shop/{upstream}-{pod_hash}": HTTP probe failed with statuscode: {status}',
                6),
    SystemEvent("health_check_failed", "kubelet", "WARN",
                'Liveness probe failed for pod "shop/{upstream}-{pod_hash}": Get "http://{ip}:8080/healthz": '
                "context deadline exceeded", 3),
    SystemEvent("oom_kill", "kernel", "ERROR",
                "Out of memory: Killed process {pid} ({proc}) total-vm:{vm_kb}kB, anon-rss:{rss_kb}kB, "
                "file-rss:0kB, shmem-rss:0kB", 3),
    SystemEvent("oom_kill", "kubelet", "ERROR",
                'Container "{upstream}" in pod "shop/{upstream}-{pod_hash}" was OOMKilled (exit code 137)', 3),
    SystemEvent("disk_pressure", "kubelet", "WARN",
                "Disk usage on image filesystem is {pct}%, which is over the high threshold (85%); "
                "trying to free {heap_mb}MB", 3),
    SystemEvent("disk_pressure", "kubelet", "WARN", "Node condition DiskPressure is now True, evicting pods", 2),
    SystemEvent("cert_expiry", "app", "WARN", "TLS certificate for {cert_host} expires in {cert_days} days", 3),
    SystemEvent("cert_expiry", "kubelet", "WARN", "Kubelet client certificate rotation due in {cert_days} days", 1),
    SystemEvent("config_reload", "systemd", "INFO", "Reloading containerd.service - containerd container runtime...", 2),
    SystemEvent("config_reload", "app", "INFO", "Configuration reloaded: {items} keys changed", 4),
    SystemEvent("node_not_ready", "kubelet", "ERROR",
                "Node became not ready: container runtime network not ready: NetworkReady=false "
                "reason:NetworkPluginNotReady", 2),
    SystemEvent("node_not_ready", "kubelet", "ERROR", "Node status update failed: error getting node: "
                "Get \"https://{ip}:6443/api/v1/nodes\": net/http: TLS handshake timeout", 1),
    SystemEvent("container_restart", "kubelet", "WARN",
                'Back-off restarting failed container "{upstream}" in pod "shop/{upstream}-{pod_hash}"', 3),
)

FILLERS.update({
    "pod_hash": _pod_hash,
    "pid": _int(300, 4_194_303),
    "proc": _pick(("java", "python3", "node", "envoy", "postgres", "dotnet")),
    "vm_kb": _int(2_000_000, 9_000_000),
    "rss_kb": _int(1_000_000, 4_000_000),
    "cert_host": _pick(("api.shop.example.com", "www.shop.example.com", "auth.shop.example.com",
                        "grafana.internal.example.com")),
    "cert_days": _int(1, 29),
})
