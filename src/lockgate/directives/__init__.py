"""Directives: declarative rules (e.g. an export-control order) compiled to Cedar and enforced per request."""
