"""Bad input to the admin CLI: a one-line error and nothing changed, never a traceback or a silent effect."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lockgate.audit import content
from lockgate.cli.main import app as cli

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKGATE_HOME", str(tmp_path))
    monkeypatch.delenv("LOCKGATE_ADMIN_KEY", raising=False)


def refused(*args: str) -> str:
    res = runner.invoke(cli, list(args))
    assert res.exit_code in (1, 2), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return " ".join(res.output.split())


def test_the_first_admin_key_must_have_the_admin_role(store_url, monkeypatch):
    monkeypatch.setenv("LOCKGATE_DATABASE_URL", store_url)
    # a first viewer key would make the store ask for admins.write, which no key then has
    assert "the first admin key must have --role admin" in refused("admins", "add", "vic", "--role", "viewer")
    assert runner.invoke(cli, ["admins", "add", "boss", "--role", "admin"]).exit_code == 0


def test_principal_ids_follow_the_admin_apis_rule():
    for bad in ("", "  ", "a b", "x" * 129):
        assert "must be 1-128 characters" in refused("principals", "add", bad)
    assert runner.invoke(cli, ["principals", "add", "ann@example.com"]).exit_code == 0


def test_a_retention_window_must_be_a_number_of_days(store):
    for days in ("-1", "nan", "inf"):  # -1 once deleted every stored prompt and answer
        refused("retention", "purge", "--days", days)
    with pytest.raises(ValueError):
        content.purge(store, -1)


def test_usage_days_budgets_and_incident_ids_are_checked():
    assert "--since 'notadate' is not a day" in refused("usage", "--since", "notadate")
    assert "--until '2026-13-45' is not a day" in refused("usage", "--until", "2026-13-45")
    for amount in (["--usd", "nan"], ["--usd", "inf"], ["--requests", "99999999999999999999999"]):
        assert "must be a number from 0" in refused("budgets", "set", "--scope", "org", "--id", "acme",
                                                    "--period", "day", *amount)
    assert "scope must be one of key, principal, org" in refused("budgets", "set", "--scope", "team", "--id", "a",
                                                                 "--period", "day", "--usd", "1")
    assert "no incident 99999999999999999999" in refused("incidents", "show", "99999999999999999999")
