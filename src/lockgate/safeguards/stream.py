"""Output-side classification of a streamed answer."""

from __future__ import annotations

import logging
import re

from .classifier import Classifier, Verdict
from .profiles import Decision, Profile

__all__ = ["StreamMonitor"]

log = logging.getLogger("lockgate.safeguards")
_TOKEN_RE = re.compile(r"\S+")


class StreamMonitor:
    """Re-classify a streamed answer every ``every_tokens`` (approximate) tokens.

    ``feed(delta)`` returns a :class:`Decision` only when the profile blocks
    (refuse / reroute); after that the monitor stays halted and keeps returning it.
    ``monitor`` hits are logged and kept in :attr:`events`. Tokens are approximated as
    max(whitespace words, chars / 4). With ``window_tokens`` set, only the tail of
    the answer (that many tokens, with the stream's overlap) is classified each time,
    bounding the cost for very long answers; by default the whole answer is.
    Classifier errors apply the profile's ``on_error``.
    """

    def __init__(self, clf: Classifier, profile: Profile, every_tokens: int = 32, window_tokens: int | None = None) -> None:
        if every_tokens < 1:
            raise ValueError("every_tokens must be >= 1")
        self.clf = clf
        self.profile = profile
        self.every_tokens = every_tokens
        self.window_tokens = window_tokens
        self._parts: list[str] = []
        self._chars = 0
        self._since_check = 0.0
        self.halted: Decision | None = None
        self.last_verdict: Verdict | None = None
        self.events: list[Decision] = []
        self.checks = 0

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @staticmethod
    def _approx_tokens(s: str) -> float:
        return max(len(_TOKEN_RE.findall(s)), len(s) / 4.0)

    def _check(self) -> Decision | None:
        text = self.text
        if self.window_tokens:
            words = text.split()
            if len(words) > self.window_tokens:
                text = " ".join(words[-self.window_tokens :])
        self.checks += 1
        try:
            v = self.clf.classify(text)
        except Exception as exc:  # crash -> profile failure mode
            log.exception("stream classification failed")
            d = self.profile.decide_error(exc)
            if d.blocking:
                self.halted = d
                return d
            return None
        self.last_verdict = v
        d = self.profile.decide(v)
        if d.action == "monitor":
            if not self.events or self.events[-1].domain != d.domain:
                log.info("safety monitor hit in stream: %s %.3f", d.domain, d.score)
            self.events.append(d)
            return None
        if d.blocking:
            self.halted = d
            return d
        return None

    def feed(self, text_delta: str) -> Decision | None:
        if self.halted is not None:
            return self.halted
        if not text_delta:
            return None
        self._parts.append(text_delta)
        self._chars += len(text_delta)
        self._since_check += self._approx_tokens(text_delta)
        if self._since_check >= self.every_tokens:
            self._since_check = 0.0
            return self._check()
        return None

    def finish(self) -> Decision | None:
        """Final classification over the whole answer (returns the blocking decision, if any)."""
        if self.halted is not None:
            return self.halted
        if not self._parts:
            return None
        self._since_check = 0.0
        return self._check()
