"""Directives -> Cedar. The schema comes from the attribute model, so a misspelt attribute is rejected
when the directive is planned, never silently skipped at run time.

Request time is the cold path of a decision (the engine caches the result), so everything that does not
depend on the principal is prepared once per policy version: the parsed `PolicySet`, the request for each
model, which principal attributes the policies can read and whether they read the context at all, and
Cedar's policy ids mapped to directive ids. Per request Cedar parses only the principal's projected
attributes (one small entity) and evaluates the policies, in one native call for a model and its re-route
chain: without a schema (every policy was validated against it when planned and applied), without a
context when no policy mentions one, and with uids in Cedar's JSON form, which skips its surface-syntax
parser. A model that no policy names is not sent to Cedar at all: every forbid is written
`[its models].contains(resource) && (condition)`, and Cedar's `&&` stops at a false left side, so such a
model is allowed by the base permit whatever the principal or context (`compile_set` has Cedar confirm it
once per version)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import cedarpy
import orjson

from lockgate.directives.model import Directive, DirectiveError

SCHEMA = """
entity Principal = {
  "us_person": Bool,
  "citizenships": Set<String>,
  "permanent_residence": String,
  "protected_individual": Bool,
  "programs": Set<String>,
  "org": String,
  "assurance": String,
};
entity Model;
action "invoke" appliesTo {
  principal: Principal,
  resource: Model,
  context: { "country": String, "api": String, "ip": String },
};
"""
ATTRIBUTES = ("us_person", "citizenships", "permanent_residence", "protected_individual", "programs", "org",
              "assurance")


def _q(s: str) -> str:
    return json.dumps(s)  # a Cedar string literal has JSON's escaping


def policy_text(d: Directive) -> str:
    targets = ", ".join(f"Model::{_q(m)}" for m in d.models)
    return (f'forbid (principal, action == Action::"invoke", resource)\n'
            f"when {{ [{targets}].contains(resource) && ({d.when}) }};")


def mentioned(text: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The attributes a policy text can read. Cedar has no computed attribute names, so reading one means
    writing it, as an identifier or a string literal; a text with an escape sequence (which could spell
    a name in a string literal) is taken to read them all. Over-including only costs cache sharing."""
    if "\\" in text:
        return tuple(sorted(names))
    return tuple(sorted(n for n in names if re.search(rf"\b{re.escape(n)}\b", text)))


@dataclass(frozen=True)
class Compiled:
    text: str
    policies: "cedarpy.PolicySet"
    ids: list[str | None]  # Cedar's policyN -> directive id (None for the base permit)
    used: tuple[str, ...] = ()  # principal attributes some policy reads (sorted)
    reads_context: bool = False  # whether any policy mentions `context` at all
    reasons: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # "policyN" -> (N, directive id)
    named: frozenset[str] = frozenset()  # the models some policy names: only these are sent to Cedar
    _requests: dict[str, dict] = field(default_factory=dict)  # model -> its request without context
    _batches: dict[tuple[str, ...], list[dict]] = field(default_factory=dict)  # chain -> its requests

    def request(self, model: str) -> dict:
        """The request for `model` without context (built once; never modified). Model names come from
        clients, so only so many are kept."""
        r = self._requests.get(model)
        if r is None:
            r = {"principal": _SUBJECT, "action": _INVOKE, "resource": {"type": "Model", "id": model}}
            if len(self._requests) < _KEPT:
                self._requests[model] = r
        return r

    def requests(self, models: list[str] | tuple[str, ...]) -> list[dict]:
        """The requests for these models without context, as one list (built once per chain)."""
        key = tuple(models)
        b = self._batches.get(key)
        if b is None:
            b = [self.request(m) for m in models]
            if len(self._batches) < _KEPT:
                self._batches[key] = b
        return b


_KEPT = 4096  # requests (and chains of them) kept per policy version


BASE = 'permit (principal, action == Action::"invoke", resource);'


def compile_set(directives: list[Directive]) -> Compiled:
    """Compiles and validates; raises DirectiveError naming the directive at fault."""
    for d in directives:
        check(d)
    text = "\n\n".join([BASE] + [policy_text(d) for d in directives])
    ids = [None] + [d.id for d in directives]
    conditions = "\n".join(d.when for d in directives)
    compiled = Compiled(text, cedarpy.PolicySet.from_str(text), ids, mentioned(conditions, ATTRIBUTES),
                        re.search(r"\bcontext\b", conditions) is not None,
                        {f"policy{i}": (i, d) for i, d in enumerate(ids)},
                        frozenset(m for d in directives for m in d.models))
    # What `evaluate` assumes of a model no policy names, asked of Cedar itself: allowed, with no error,
    # for a principal with no attributes and an empty context (so any condition it reached would fail).
    unnamed = next(f"unnamed-{i}" for i in range(len(compiled.named) + 1) if f"unnamed-{i}" not in compiled.named)
    answer = read(compiled, _ask(compiled, entities_json({}), [unnamed], "{}")[0])
    if answer != (True, [], []):  # pragma: no cover - would mean policy_text no longer has that shape
        raise DirectiveError(f"internal: the policy set does not allow a model it does not name: {answer}")
    return compiled


def check(d: Directive) -> None:
    text = BASE + "\n" + policy_text(d)
    try:
        result = cedarpy.validate_policies(text, SCHEMA)
    except Exception as e:  # unparsable condition
        raise DirectiveError(f"directive {d.id}: `when` is not a valid Cedar condition: {e}") from None
    if not result.validation_passed:
        msgs = "; ".join(str(getattr(err, "error", err)) for err in result.errors) or "fails validation"
        raise DirectiveError(f"directive {d.id}: `when` does not validate against the attribute schema: {msgs}")


# Directives are about attributes, never about a named principal, so every request is evaluated as the
# same entity: decisions can then be shared by everyone with equal attributes.
SUBJECT = 'Principal::"subject"'
_SUBJECT = {"type": "Principal", "id": "subject"}
_INVOKE = {"type": "Action", "id": "invoke"}
# cedarpy's public `is_authorized_batch` is a thin wrapper over this native call that turns each result
# (a JSON string) into objects with the standard `json` module; reading the JSON with orjson instead saves
# a good part of the Python time of a cold decision. Same call, same arguments, same evaluation.
_batch = getattr(getattr(cedarpy, "_internal", None), "is_authorized_batch", None)
_NONE: dict = {}
_HEAD = b'[{"uid":{"type":"Principal","id":"subject"},"parents":[],"attrs":'
_TAIL = b"}]"


def entities_json(attrs: dict | bytes) -> str:
    """The subject entity with these attributes (a dict, or a dict already serialised as JSON), as the
    entities document Cedar parses."""
    doc = attrs if isinstance(attrs, bytes) else orjson.dumps(attrs)
    return (_HEAD + doc + _TAIL).decode()


def authorize(compiled: Compiled, ents: str, models: list[str],
              context: dict | str | None) -> dict[str, tuple[bool, list[str], list[str]]]:
    """For each model: (allowed, directive ids that forbade, evaluation errors). One native call for all,
    so a re-route chain costs about as much as a single decision. `context` is the request context as a
    dict, or as `context_json` gives it."""
    if isinstance(context, dict):
        context = context_json(compiled, context)
    raw = evaluate(compiled, ents, models, context)
    return {m: read(compiled, raw[m]) for m in models}


def evaluate(compiled: Compiled, ents: str, models: list[str] | tuple[str, ...],
             context: str | None) -> dict[str, str | dict]:
    """Cedar's answer for each model, unread (see `read`): one native call for the whole chain, in which
    Cedar also parses `ents` (see `entities_json`); if it cannot, every answer is NoDecision with the
    error, which `read` turns into not allowed. (Parsing the entity inside the call costs the same as
    parsing it into a reusable `cedarpy.Entities` first, minus a native call and a handle.)"""
    named = compiled.named
    asked = [m for m in models if m in named]
    out: dict[str, str | dict] = {m: _ALLOWED for m in models if m not in named}
    if asked:
        out.update(zip(asked, _ask(compiled, ents, asked, context)))
    return out


_ALLOWED = {"decision": "Allow", "diagnostics": {"reason": ["policy0"], "errors": []}}  # by the base permit


def _ask(compiled: Compiled, ents: str, models: list[str], context: str | None) -> list[str | dict]:
    """Cedar's answers for these models, in order, from one native call."""
    if context is None:
        reqs = compiled.requests(models)
    else:
        reqs = [{**compiled.request(m), "context": context} for m in models]
    if _batch is None:  # pragma: no cover - a cedarpy without the native entry point: its public wrapper
        return [r._authz_resp for r in cedarpy.is_authorized_batch(reqs, compiled.policies, ents)]
    return _batch(reqs, compiled.policies, ents, None, False)


def read(compiled: Compiled, raw: str | dict) -> tuple[bool, list[str], list[str]]:
    """(allowed, directive ids that forbade, evaluation errors) from one of Cedar's answers. Anything
    but an error-free Allow is not allowed (Cedar answers NoDecision when the request cannot be built)."""
    r = orjson.loads(raw) if type(raw) is str else raw
    diagnostics = r.get("diagnostics") or _NONE
    errors = diagnostics.get("errors")
    if not errors and r.get("decision") == "Allow":
        return True, [], []
    # Cedar reports the policies that fired as a set, in no stable order; the policy set's order (catalog
    # rules, then directives as applied) makes the first notice and the fallback taken deterministic.
    reasons = compiled.reasons
    fired = sorted(reasons[p] for p in diagnostics.get("reason") or () if p in reasons)
    return False, [f for _, f in fired if f], [str(e) for e in errors or ()]


def context_json(compiled: Compiled, context: dict) -> str | None:
    """The request context as JSON when some policy mentions `context`, else None: Cedar then gets an
    empty context, and decisions do not depend on it (`context` is the only way a policy can reach it).
    A key the request lacks stays absent, so a policy reading it fails to evaluate and denies."""
    if not compiled.reads_context:
        return None
    return orjson.dumps(context).decode()
