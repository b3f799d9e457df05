"""Where a request goes: catalog lookup, deployment choice, the upstream call and failover."""
