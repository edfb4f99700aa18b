"""The sender's configuration: YAML, environment and flags -> one validated,
immutable SenderConfig (docs/configuration.md documents every key).

    schema     the dataclasses, SenderConfig's loaders, and what a signal's target is
    endpoints  gRPC host:port and OTLP/HTTP URLs, as the OTLP exporter specification reads them
    rules      rules per key, values derived from what was written, checks across keys
    layers     defaults < environment (OTEL_EXPORTER_OTLP_*) < YAML < overrides
"""
from .endpoints import DEFAULT_ENDPOINTS, http_url, split_endpoint
from .layers import ENV_VARIABLES
from .schema import (
    BatchSizeConfig,
    Headers,
    InputConfig,
    OtlpConfig,
    RateLimitConfig,
    RetryConfig,
    SenderConfig,
    SendingConfig,
    ShardConfig,
    SignalOtlpConfig,
    SignalTarget,
    StageConfig,
    ThresholdsConfig,
    TimestampsConfig,
    TlsConfig,
)

__all__ = [
    "DEFAULT_ENDPOINTS", "ENV_VARIABLES", "BatchSizeConfig", "Headers", "InputConfig", "OtlpConfig",
    "RateLimitConfig", "RetryConfig", "SenderConfig", "SendingConfig", "ShardConfig", "SignalOtlpConfig",
    "SignalTarget", "StageConfig", "ThresholdsConfig", "TimestampsConfig", "TlsConfig", "http_url", "split_endpoint",
]
