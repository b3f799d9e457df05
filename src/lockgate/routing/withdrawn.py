"""Withdrawn deployments in the store. Every write goes through `store.change()`, so running gateways
reload within their poll interval and the CLI sees the same state."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lockgate.routing.models import DeploymentState


def _row(r: DeploymentState) -> dict:
    return {"model": r.model, "deployment": r.deployment, "state": r.state, "reason": r.reason,
            "upstream_status": r.upstream_status, "changed_at": r.changed_at.isoformat() if r.changed_at else None,
            "changed_by": r.changed_by, "incidents": r.incidents}


def load_withdrawn(store) -> dict[tuple[str, str], dict]:
    """(model, deployment) -> row, for every deployment currently withdrawn."""
    with store.session() as s:
        rows = s.scalars(select(DeploymentState).where(DeploymentState.state == "withdrawn")).all()
        return {(r.model, r.deployment): _row(r) for r in rows}


def list_states(store) -> list[dict]:
    with store.session() as s:
        rows = s.scalars(select(DeploymentState).order_by(DeploymentState.model, DeploymentState.deployment)).all()
        return [_row(r) for r in rows]


def mark_withdrawn(store, model: str, deployment: str, reason: str, upstream_status: int | None,
                   by: str = "gateway") -> bool:
    """Records the withdrawal; False when it was already recorded (another replica got there first)."""
    for _ in range(2):  # two replicas inserting the same row at once: the loser updates instead
        try:
            with store.change() as s:
                r = s.get(DeploymentState, (model, deployment), with_for_update=True)
                now = datetime.now(timezone.utc)
                if r is None:
                    s.add(DeploymentState(model=model, deployment=deployment, state="withdrawn", reason=reason[:2000],
                                          upstream_status=upstream_status, changed_at=now, changed_by=by, incidents=1))
                    return True
                if r.state == "withdrawn":
                    return False
                r.state, r.reason, r.upstream_status = "withdrawn", reason[:2000], upstream_status
                r.changed_at, r.changed_by, r.incidents = now, by, r.incidents + 1
                return True
        except IntegrityError:
            continue
    return False


def restore(store, model: str, deployment: str | None = None, by: str = "cli") -> list[str]:
    """Marks the model's withdrawn deployments (or one of them) restored; returns the ones restored."""
    with store.change() as s:
        q = select(DeploymentState).where(DeploymentState.model == model, DeploymentState.state == "withdrawn")
        if deployment:
            q = q.where(DeploymentState.deployment == deployment)
        done = []
        for r in s.scalars(q).all():
            r.state, r.changed_at, r.changed_by = "restored", datetime.now(timezone.utc), by
            done.append(r.deployment)
        return done
