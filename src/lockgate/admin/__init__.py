"""The admin HTTP API under /admin/v1."""
