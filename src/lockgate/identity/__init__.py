"""Who is asking: API keys (and, in #3, OIDC tokens) mapped to principals."""
