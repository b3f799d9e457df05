"""lockgate: a gateway that decides, per request, who may use which model under which rules."""

__version__ = "0.1.0"
