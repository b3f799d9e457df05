"""lockgate safeguards: cyber / bio / chem intent classifiers, profiles and stream monitoring.

Public API::

    from lockgate.safeguards import Classifier, Verdict, Profile, DomainRule, default_profiles, StreamMonitor, normalise_forms
    clf = Classifier.load()
    v = clf.classify(text)
    decision = default_profiles()["strict"].decide(v)
"""

from .classifier import Classifier, Verdict
from .normalise import normalise_forms
from .profiles import Decision, DomainRule, Profile, default_profiles, load_profile
from .stream import StreamMonitor

DOMAINS = ("cyber", "bio", "chem")

__all__ = [
    "Classifier",
    "Verdict",
    "Profile",
    "DomainRule",
    "Decision",
    "default_profiles",
    "load_profile",
    "StreamMonitor",
    "normalise_forms",
    "DOMAINS",
]
