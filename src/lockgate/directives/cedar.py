"""Directives -> Cedar. The schema comes from the attribute model, so a misspelt attribute is rejected
when the directive is planned, never silently skipped at run time."""

from __future__ import annotations

import json
from dataclasses import dataclass

import cedarpy

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


@dataclass(frozen=True)
class Compiled:
    text: str
    policies: "cedarpy.PolicySet"
    ids: list[str | None]  # Cedar's policyN -> directive id (None for the base permit)


BASE = 'permit (principal, action == Action::"invoke", resource);'


def compile_set(directives: list[Directive]) -> Compiled:
    """Compiles and validates; raises DirectiveError naming the directive at fault."""
    for d in directives:
        check(d)
    text = "\n\n".join([BASE] + [policy_text(d) for d in directives])
    return Compiled(text, cedarpy.PolicySet.from_str(text), [None] + [d.id for d in directives])


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
# same entity: decisions (and parsed entity sets) can then be shared by everyone with equal attributes.
SUBJECT = 'Principal::"subject"'


def entities(attrs: dict) -> "cedarpy.Entities":
    doc = [{"uid": {"type": "Principal", "id": "subject"}, "attrs": attrs, "parents": []}]
    return cedarpy.Entities.from_json_str(json.dumps(doc))


def authorize(compiled: Compiled, ents: "cedarpy.Entities", models: list[str],
              context: dict) -> dict[str, tuple[bool, list[str], list[str]]]:
    """For each model: (allowed, directive ids that forbade, evaluation errors). One native call for all,
    so a re-route chain costs about as much as a single decision."""
    reqs = [{"principal": SUBJECT, "action": 'Action::"invoke"', "resource": f"Model::{_q(m)}", "context": context}
            for m in models]
    out = {}
    for m, r in zip(models, cedarpy.is_authorized_batch(reqs, compiled.policies, ents)):
        fired = [compiled.ids[int(p.removeprefix("policy"))] for p in r.diagnostics.reasons
                 if compiled.ids[int(p.removeprefix("policy"))]]
        errors = [str(e) for e in r.diagnostics.errors]
        out[m] = (r.allowed and not errors, fired, errors)
    return out
