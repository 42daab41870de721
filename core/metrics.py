"""Prometheus metrics of the process (prometheus-client's default registry), shared by API and nodes."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_REQUESTS = Counter(
    "docent_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "docent_http_request_duration_seconds",
    "Time to the end of the response, by route template.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
RETRIEVAL_LATENCY = Histogram(
    "docent_retrieval_duration_seconds",
    "Retrieval (query embedding + search) per turn.",
    ["retriever"],
    buckets=_LATENCY_BUCKETS,
)
MODEL_LATENCY = Histogram(
    "docent_model_duration_seconds",
    "Answering time per turn, by the model that answered.",
    ["model"],
    buckets=_LATENCY_BUCKETS,
)
MODEL_TOKENS = Counter(
    "docent_model_tokens", "Tokens by model and kind (prompt, completion).", ["model", "kind"]
)
DEGRADED_ANSWERS = Counter(
    "docent_degraded_answers", "Turns answered by a fallback because the chosen model failed."
)
RATE_LIMITED = Counter("docent_rate_limited_requests", "Requests refused with 429, by key name.", ["key"])
BLOCKED = Counter(
    "docent_blocked_requests", "Requests refused by the input guardrail, by pattern.", ["pattern"]
)
OUTPUT_RULES = Counter(
    "docent_output_rules",
    "Answers the output guardrail changed: `withheld` by a blocked pattern (`rule`: the pattern) or"
    " `redacted` (`rule`: email, phone or card).",
    ["action", "rule"],
)
ANSWER_CACHE = Counter(
    "docent_answer_cache_lookups",
    "First turns looked up in the answer cache, by result: `hit` (served the stored answer) or `miss`.",
    ["result"],
)
