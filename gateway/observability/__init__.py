"""Operations: Prometheus metrics, the request id and latency middleware, tracing, the job registry."""
