"""Metering: usage and cost per request, budgets and rate limits enforced by reservation (docs/audit.md)."""
