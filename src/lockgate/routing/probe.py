"""Background probe: asks each withdrawn deployment for one token now and then; an answer restores it."""

from __future__ import annotations

import asyncio
import logging

from anyio import to_thread

from lockgate.chat import ChatRequest, Message
from lockgate.errors import GatewayError
from lockgate.routing import withdrawn as wstore

log = logging.getLogger("lockgate.routing")


async def probe_once(router) -> list[str]:
    """Probes every withdrawn deployment once; returns the keys restored."""
    restored = []
    for deps in router.balancer.by_model.values():
        for dep in deps:
            if not router.balancer.is_withdrawn(dep) or (dep.model, dep.key) in router._pending:
                continue
            req = ChatRequest(api="openai", model=dep.model, messages=[Message("user", "ping")], max_tokens=1)
            try:
                async with asyncio.timeout(dep.upstream.timeout.total):
                    async for _ in dep.provider.generate(req, default_max_tokens=1):
                        pass
            except (GatewayError, TimeoutError) as e:  # still gone, or unreachable: try again later
                log.debug("probe of %s: %s", dep.key, e)
                continue
            done = await to_thread.run_sync(wstore.restore, router.gw.store, dep.model, dep.key, "probe")
            router.balancer.withdrawn.pop((dep.model, dep.key), None)
            if done:
                router.incident("restored", dep.model, dep.key, "a probe got an answer")
            restored.append(dep.key)
    return restored


async def probe_loop(router) -> None:
    while True:
        await asyncio.sleep(router.settings.probe_interval)
        try:
            await probe_once(router)
        except Exception as e:  # a store outage must not end the probing
            log.warning("probe of withdrawn models failed: %s", e)
