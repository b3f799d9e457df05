"""Resolve stage: the model asked for must be in the catalog (404 otherwise)."""

from __future__ import annotations

from lockgate.context import RequestContext
from lockgate.errors import GatewayError
from lockgate.pipeline import BaseStage


class ResolveStage(BaseStage):
    name = "resolve"

    def __init__(self, gateway) -> None:
        self.gw = gateway

    async def on_request(self, ctx: RequestContext):
        name = ctx.req.model
        if name not in self.gw.catalog:
            raise GatewayError(404, f"The model {name!r} does not exist or you do not have access to it.",
                               code="model_not_found", param="model")
        ctx.requested_model = ctx.model = name
        return None
