"""Prometheus metrics of `ragtune serve` (GET /metrics, text format, via prometheus-client).

- `ragtune_requests_total{mode, status}`: chat completions by the mode that answered
  (`none` when the request failed before a mode was chosen) and HTTP status;
- `ragtune_request_latency_seconds{mode}`: time to the whole answer, per mode;
- `ragtune_queue_depth`: questions waiting for the generation worker;
- `ragtune_batch_size`: requests per generation batch (micro-batches grow with load).

Each app has its own registry (no process-global state), so two servers or a test
suite never mix counts. Queue depth and batch sizes are read from the worker at scrape
time instead of being pushed from its thread.

Example:
    >>> metrics = ServerMetrics(worker)                                       # doctest: +SKIP
    >>> metrics.observe("rag", 200, 0.42); metrics.render()[:30]              # doctest: +SKIP
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from framework.serving.worker import GenerationWorker

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class _WorkerCollector:
    def __init__(self, worker: GenerationWorker) -> None:
        self.worker = worker

    def collect(self):
        yield GaugeMetricFamily("ragtune_queue_depth", "Questions waiting for the generation worker.",
                                value=self.worker.depth())
        sizes = dict(self.worker.batch_sizes)
        buckets = [(str(le), sum(n for s, n in sizes.items() if s <= le)) for le in BATCH_BUCKETS]
        yield HistogramMetricFamily("ragtune_batch_size", "Requests per generation batch (one adapter each).",
                                    buckets=[*buckets, ("+Inf", sum(sizes.values()))],
                                    sum_value=sum(s * n for s, n in sizes.items()))


class ServerMetrics:
    def __init__(self, worker: GenerationWorker) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ragtune_requests", "Chat completion requests by answering mode and HTTP status.",
                                ["mode", "status"], registry=self.registry)
        self.latency = Histogram("ragtune_request_latency_seconds", "Seconds to a whole answer, per mode.",
                                 ["mode"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_WorkerCollector(worker))

    def observe(self, mode: str | None, status: int, seconds: float | None = None) -> None:
        self.requests.labels(mode=mode or "none", status=str(status)).inc()
        if seconds is not None and mode:
            self.latency.labels(mode=mode).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
