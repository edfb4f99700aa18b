"""The send stage: templates -> patched requests -> an OTLP endpoint, at a rate.

    sender     Sender: the public entry (config -> load -> run -> report)
    config/    YAML, environment and flags -> one validated SenderConfig
    shard      a sender's place in a fleet: its share of the rate, its metric series
    load/      template files -> batches with their patch plans (and patchable gzip or zstd), the load cache
    engine/    the rate plan and limiter, the schedule, workers and processes, progress and stages
    transport/ one interface, two carriers: OTLP/gRPC (grpcio) and OTLP/HTTP (libcurl)
    report/    the run's figures: SendReport, latency histograms, timeline and chart, thresholds,
               Prometheus self-metrics
"""
