"""Who may call and how much: API keys and scopes, thread ownership, request limits, the input guardrail
and the rate limiter."""
