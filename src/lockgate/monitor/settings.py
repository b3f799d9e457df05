"""`monitor:` in the config file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RANK = {"flag": 1, "throttle": 2, "suspend": 3}


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: int = Field(ge=1)  # signalled requests within the window
    action: Literal["flag", "throttle", "suspend"]
    requests_per_minute: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _rpm(self) -> "Step":
        if self.action == "throttle" and self.requests_per_minute is None:
            raise ValueError("a throttle step needs requests_per_minute")
        return self


class MonitorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    window_minutes: int = Field(default=60, ge=1)
    ladder: list[Step] = Field(default_factory=lambda: [
        Step(at=3, action="flag"), Step(at=5, action="throttle", requests_per_minute=2),
        Step(at=8, action="suspend")])
    scope: Literal["principal", "key"] = "principal"  # what the ladder counts and acts on
    org_flag_at: int | None = Field(default=None, ge=1)  # org-wide hits that open an org incident (flag only)
    jailbreak_similarity: float = Field(default=0.80, gt=0, le=1)
    embed_min_chars: int = 400  # embed prompts at least this long even without a safeguard signal
    sample_rate: float = Field(default=0.0, ge=0, le=1)  # and this share of the rest
    queue_size: int = Field(default=1000, ge=1)  # pending off-path jobs; beyond it new ones are dropped
    webhook_url: str | None = None
    webhook_timeout_s: float = 5.0
    evidence_max: int = 50

    @model_validator(mode="after")
    def _order(self) -> "MonitorSettings":
        self.ladder = sorted(self.ladder, key=lambda s: s.at)
        ranks = [RANK[s.action] for s in self.ladder]
        if ranks != sorted(ranks):
            raise ValueError("ladder steps must escalate: flag before throttle before suspend")
        return self

    @classmethod
    def of(cls, config) -> "MonitorSettings":
        # No `monitor:` section, no monitor: suspending principals is a policy an operator opts into.
        return cls.model_validate(config.monitor) if config.monitor else cls(enabled=False)

    def step_for(self, count: int, scope: str) -> Step | None:
        """The highest step reached by `count` hits; org incidents only ever flag."""
        if scope == "org":
            return Step(at=self.org_flag_at, action="flag") if self.org_flag_at and count >= self.org_flag_at else None
        reached = [s for s in self.ladder if count >= s.at]
        return reached[-1] if reached else None
