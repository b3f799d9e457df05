"""OIDC bearer tokens: verified signatures and claims become attestations; everything else is a 401."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from support import run_gateway
from test_directives_june12 import ROOT, june12_config
from lockgate import config as cfg
from lockgate.directives import model as dmodel
from lockgate.directives import service

ISS, AUD = "https://login.example.test", "lockgate"


@pytest.fixture
def idp(tmp_path):
    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))

    def mint(sub: str, key_=key, **claims):
        now = int(time.time())
        payload = {"iss": ISS, "aud": AUD, "sub": sub, "iat": now, "exp": now + 600, **claims}
        return jwt.encode({"alg": "RS256", "kid": "k1"}, payload, key_)

    mint.jwks = str(path)
    return mint


@pytest.fixture
def gw(fake, store, idp):
    conf = june12_config(fake.url)
    conf["identity"] = {"us_person_assurance": "kyc", "oidc": [
        {"issuer": ISS, "audience": AUD, "jwks_file": idp.jwks, "assurance": "kyc",
         "claims": {"org": "org", "citizenships": "nationalities", "programs": "programs"}}]}
    with run_gateway(conf, store) as g:
        g.conf = cfg.Config.model_validate(conf)
        yield g


def served(gw, token, model="fable-5"):
    r = httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {token}"},
                   json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    return r.status_code, r.headers.get("lockgate-served-model"), r.json()


def test_token_claims_drive_directives(gw, idp):
    service.apply(gw.store, gw.conf, dmodel.load(ROOT / "examples/june-12/directive.yaml"), "test")
    time.sleep(0.6)
    us, cn = idp("u-1", nationalities=["US"], org="acme"), idp("u-2", nationalities=["CN"])
    assert served(gw, us)[:2] == (200, "fable-5")
    assert served(gw, cn)[:2] == (200, "opus-4.8")
    glass = idp("u-3", nationalities=["US"], programs=["glasswing"])
    assert served(gw, glass, "mythos-5")[:2] == (200, "mythos-5")
    assert served(gw, idp("u-4", nationalities="not-a-list-of-codes!"))[:2] == (200, "opus-4.8")  # fails closed


def test_bad_tokens_are_401(gw, idp):
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    cases = {
        "forged": idp("u-1", key_=other, nationalities=["US"]),
        "expired": idp("u-1", exp=int(time.time()) - 10),
        "audience": idp("u-1", aud="someone-else"),
        "issuer": idp("u-1", iss="https://evil.test"),
    }
    for why, tok in cases.items():
        status, _, body = served(gw, tok)
        assert status == 401, why
        assert body["error"]["type"] == "authentication_error"
