"""Safety profiles: per-domain action + threshold, and what to do when the classifier fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .examples import DOMAINS

__all__ = ["DomainRule", "Profile", "Decision", "default_profiles", "load_profile"]

Action = Literal["reroute", "refuse", "monitor"]
DecisionAction = Literal["allow", "refuse", "reroute", "monitor"]


class DomainRule(BaseModel):
    """What to do when a domain's score reaches ``threshold``.

    ``threshold=None`` uses the artefact's calibrated default for that domain.
    """

    model_config = ConfigDict(extra="forbid")

    action: Action = "refuse"
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    model: str | None = None  # reroute target

    @model_validator(mode="after")
    def _reroute_needs_model(self) -> "DomainRule":
        if self.action == "reroute" and not self.model:
            raise ValueError("action 'reroute' needs a target 'model'")
        return self


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    action: DecisionAction
    domain: str | None = None
    model: str | None = None
    score: float = 0.0
    reason: str | None = None

    @property
    def blocking(self) -> bool:
        """True when the request/answer must not continue unchanged (refuse or reroute)."""
        return self.action in ("refuse", "reroute")


class Profile(BaseModel):
    """Maps each domain to a :class:`DomainRule`; ``on_error`` decides on classifier crash/timeout.

    Loadable from a dict / YAML such as::

        {"domains": {"cyber": {"action": "reroute", "model": "opus-4.8", "threshold": 0.5}},
         "on_error": "refuse"}

    Domains not listed get ``refuse`` at the calibrated threshold. ``on_error`` defaults to
    ``refuse`` when any domain blocks, else ``allow``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "custom"
    domains: dict[str, DomainRule] = Field(default_factory=dict)
    on_error: Literal["refuse", "allow", "reroute", "monitor"] | None = None
    error_model: str | None = None  # reroute target when on_error == "reroute"

    @model_validator(mode="after")
    def _fill(self) -> "Profile":
        unknown = set(self.domains) - set(DOMAINS)
        if unknown:
            raise ValueError(f"unknown domain(s) {sorted(unknown)}; expected {list(DOMAINS)}")
        for d in DOMAINS:
            self.domains.setdefault(d, DomainRule())
        if self.on_error is None:
            blocking = any(r.action in ("refuse", "reroute") for r in self.domains.values())
            self.on_error = "refuse" if blocking else "allow"
        if self.on_error == "reroute" and not self.error_model:
            models = [r.model for r in self.domains.values() if r.model]
            if not models:
                raise ValueError("on_error 'reroute' needs 'error_model'")
            self.error_model = models[0]
        return self

    # ------------------------------------------------------------------
    def threshold_for(self, domain: str, defaults: dict[str, float] | None = None) -> float:
        rule = self.domains[domain]
        if rule.threshold is not None:
            return rule.threshold
        if defaults and domain in defaults:
            return float(defaults[domain])
        return 0.5

    def decide(self, verdict: Any) -> Decision:
        """Map a :class:`~lockgate.safeguards.Verdict` to an action.

        Among domains at/above their threshold, blocking actions win over ``monitor``
        (refuse over reroute), then the highest score.
        """
        defaults = getattr(verdict, "thresholds", None)
        hits: list[tuple[int, float, str]] = []
        rank = {"refuse": 3, "reroute": 2, "monitor": 1}
        for d in DOMAINS:
            s = float(verdict.scores.get(d, 0.0))
            if s >= self.threshold_for(d, defaults):
                hits.append((rank[self.domains[d].action], s, d))
        if not hits:
            top = max(DOMAINS, key=lambda d: verdict.scores.get(d, 0.0))
            return Decision(action="allow", domain=None, score=float(verdict.scores.get(top, 0.0)))
        hits.sort(reverse=True)
        _, score, dom = hits[0]
        rule = self.domains[dom]
        return Decision(action=rule.action, domain=dom, model=rule.model if rule.action == "reroute" else None, score=score,
                        reason=f"{dom} score {score:.3f} >= {self.threshold_for(dom, defaults):.3f}")

    def decide_error(self, error: BaseException | str | None = None) -> Decision:
        """Decision when the classifier crashed or timed out (``on_error``)."""
        act = self.on_error or "refuse"
        return Decision(action=act, domain=None, model=self.error_model if act == "reroute" else None, score=0.0,
                        reason=f"classifier error: {error}" if error else "classifier error")

    @classmethod
    def from_yaml(cls, path_or_text: str | Path, name: str | None = None) -> "Profile":
        import yaml

        p = Path(path_or_text) if not isinstance(path_or_text, Path) and "\n" not in str(path_or_text) else path_or_text
        text = p.read_text(encoding="utf-8") if isinstance(p, Path) and p.exists() else str(path_or_text)
        data = yaml.safe_load(text) or {}
        if name and "name" not in data:
            data["name"] = name
        return cls.model_validate(data)


def default_profiles() -> dict[str, Profile]:
    """``strict``: reroute cyber to a stronger model, refuse bio and chem; ``defender``: monitor cyber only."""
    return {
        "strict": Profile(
            name="strict",
            domains={
                "cyber": DomainRule(action="refuse"),
                "bio": DomainRule(action="refuse"),
                "chem": DomainRule(action="refuse"),
            },
            on_error="refuse",
        ),
        "defender": Profile(
            name="defender",
            domains={
                "cyber": DomainRule(action="monitor"),
                "bio": DomainRule(action="refuse"),
                "chem": DomainRule(action="refuse"),
            },
            on_error="refuse",
        ),
    }


def load_profile(name_or_path: str) -> Profile:
    """A default profile by name, or a YAML/JSON file."""
    profiles = default_profiles()
    if name_or_path in profiles:
        return profiles[name_or_path]
    p = Path(name_or_path)
    if p.exists():
        return Profile.from_yaml(p, name=p.stem)
    raise ValueError(f"unknown profile {name_or_path!r}; choose from {sorted(profiles)} or pass a YAML file")
