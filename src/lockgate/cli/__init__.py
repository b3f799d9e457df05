"""The `lockgate` command line: one module per noun."""
