"""GET /metrics: the process's Prometheus metrics, in the text exposition format."""

from __future__ import annotations

from fastapi import HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.routes import docent_router

router = docent_router(tags=["metrics"])
EXAMPLE = """\
# HELP docent_http_requests_total HTTP requests answered, by route template, method and status.
# TYPE docent_http_requests_total counter
docent_http_requests_total{method="POST",route="/invoke",status="200"} 12.0
docent_http_requests_total{method="GET",route="/threads/{thread_id}",status="404"} 1.0
# HELP docent_http_request_duration_seconds Time to the end of the response, by route template.
# TYPE docent_http_request_duration_seconds histogram
docent_http_request_duration_seconds_bucket{le="0.05",method="POST",route="/invoke"} 11.0
docent_http_request_duration_seconds_count{method="POST",route="/invoke"} 12.0
docent_http_request_duration_seconds_sum{method="POST",route="/invoke"} 0.2961
"""


async def no_admin_auth() -> None:
    """Placeholder guard until the admin-key dependency is attached: refuse rather than serve openly."""
    raise HTTPException(
        status_code=403,
        detail="GET /metrics needs an admin key; set DOCENT_METRICS_PUBLIC=true to serve it without one",
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"example": EXAMPLE}},
            "description": "Prometheus text exposition format",
        }
    },
)
async def metrics() -> Response:
    """Counters and histograms of this process: HTTP requests and latency by route template, retrieval and
    model latency, tokens, degraded answers, rate-limited and blocked requests.
    """
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
