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


def test_unreadable_files_are_named_not_traced(tmp_path):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert f"{binary}: not UTF-8 text" in refused("check-config", str(binary))
    assert f"{binary}: not UTF-8 text" in refused("directive", "plan", str(binary))
    assert "not UTF-8 text; nothing was imported" in refused("principals", "import", str(binary))
    assert "a directory, not a CSV file" in refused("principals", "import", str(tmp_path))
    for pem in (tmp_path / "nope.pem", tmp_path, binary):
        assert "not a readable PEM public key" in refused("audit", "verify", "--public-key", str(pem))
    assert "no directive 'x' was ever applied" in refused("report", "directive", "x", "--out", str(tmp_path))
    (tmp_path / "taken").write_text("")
    assert "File exists" in refused("audit", "export", "--out", str(tmp_path / "taken"))


def test_serve_refuses_a_bad_port_or_log_level_before_starting():
    assert "--log-level must be one of" in refused("serve", "--log-level", "bogus")
    refused("serve", "--port", "99999")  # once: uvicorn said it listened on 99999 and bound 34463


def test_the_command_turns_what_no_command_caught_into_one_line(monkeypatch, capsys):
    import lockgate.cli.main as m

    def broken():
        raise IsADirectoryError(21, "Is a directory", "/somewhere")

    monkeypatch.setattr(m, "app", broken)
    monkeypatch.delenv("LOCKGATE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        m.main()
    assert exc.value.code == 1
    monkeypatch.setenv("LOCKGATE_DEBUG", "1")  # the traceback, for whoever asks
    with pytest.raises(IsADirectoryError):
        m.main()


def test_check_config_names_an_unknown_safeguard_profile(tmp_path):
    conf = tmp_path / "lockgate.yaml"
    conf.write_text("models:\n  - name: m1\n    upstream: {provider: local, model: bundled:smollm2-135m}\n"
                    "    safeguards: strict\n    safeguards_by_program: {glasswing: defendr}\n")
    out = refused("check-config", str(conf))  # serve refuses to start on it; check-config said it was fine
    assert "models.0.safeguards_by_program.glasswing (line 5): unknown safeguard profile 'defendr'" in out
    conf.write_text(conf.read_text().replace("defendr", "house") + "safeguards:\n  profiles:\n    house: {domains: {}}\n")
    assert runner.invoke(cli, ["check-config", str(conf)]).exit_code == 0


def test_a_limit_for_nobody_yet_is_set_with_a_warning():
    res = runner.invoke(cli, ["budgets", "set", "--scope", "org", "--id", "acmee", "--period", "day", "--usd", "5"])
    assert res.exit_code == 0 and "no org 'acmee' exists yet" in " ".join(res.output.split())
    assert runner.invoke(cli, ["principals", "add", "ann", "--org", "acme"]).exit_code == 0
    res = runner.invoke(cli, ["budgets", "set", "--scope", "org", "--id", "acme", "--period", "day", "--usd", "5"])
    assert res.exit_code == 0 and "exists yet" not in res.output


def test_a_bad_attestation_names_the_option():
    assert runner.invoke(cli, ["principals", "add", "ann"]).exit_code == 0
    out = refused("principals", "attest", "ann", "--fact", "bogus", "--value", "US")
    assert "--fact: Input should be 'citizenships'" in out
    assert "--expires: an expiry must be in the future" in refused(
        "principals", "attest", "ann", "--fact", "programs", "--value", "glasswing", "--expires", "2020-01-01")
    assert "--expires 'soon' is not an ISO 8601 date" in refused(
        "principals", "attest", "ann", "--fact", "programs", "--value", "glasswing", "--expires", "soon")
    res = runner.invoke(cli, ["principals", "attest", "ann", "--fact", "programs", "--value", "glasswing",
                              "--expires", "2099-01-01"])
    assert res.exit_code == 0, res.output


def test_listing_the_keys_of_nobody_is_an_error_not_an_empty_list():
    assert "principal 'nosuch' does not exist" in refused("keys", "list", "--principal", "nosuch")
    assert runner.invoke(cli, ["principals", "add", "ann"]).exit_code == 0
    res = runner.invoke(cli, ["keys", "list", "--principal", "ann"])
    assert res.exit_code == 0 and res.stdout.strip() == "[]"


def test_applying_a_directive_for_models_outside_the_catalog_warns(tmp_path):
    d = tmp_path / "d.yaml"
    d.write_text('id: t-1\ntitle: test\nmodels: [nosuch]\nwhen: "!principal.us_person"\neffect: deny\nnotice: denied\n')
    res = runner.invoke(cli, ["directive", "apply", str(d)])  # applied (a replica may serve it), but said
    assert res.exit_code == 0 and "not in this catalog: nosuch" in " ".join(res.output.split())


def test_check_config_names_a_missing_local_model_file(tmp_path):
    conf = tmp_path / "lockgate.yaml"
    conf.write_text("models:\n  - name: m1\n    upstream: {provider: local, model: " + str(tmp_path / "no.gguf") + "}\n"
                    "  - name: m2\n    upstream: {provider: local, model: 'bundled:nosuch'}\n")
    out = refused("check-config", str(conf))  # serve starts on it, and every request to m1 then fails
    assert f"models.0.upstream.model (line 3): model file not found: {tmp_path / 'no.gguf'}" in out
    assert "models.1.upstream.model (line 5): unknown bundled model 'nosuch'" in out
    (tmp_path / "no.gguf").write_bytes(b"GGUF")
    conf.write_text(conf.read_text().replace("'bundled:nosuch'", "'bundled:smollm2-135m'"))
    assert runner.invoke(cli, ["check-config", str(conf)]).exit_code == 0


@pytest.mark.parametrize("var, value", [("LOCKGATE_SAFETY_MEMO", "lots"), ("LOCKGATE_SAFETY_THREADS", "abc"),
                                        ("LOCKGATE_SAFETY_WORKERS", "-2")])
def test_a_bad_safety_setting_in_the_environment_is_named(var, value, monkeypatch, tmp_path):
    monkeypatch.setenv(var, value)
    assert f"{var} must be a whole number" in refused("serve", "--port", "8999")  # before anything listens
    (tmp_path / "in.jsonl").write_text('{"id": 1, "text": "hi"}\n')
    assert f"{var} must be a whole number" in refused("safety", "classify", "--profile", "strict", str(tmp_path / "in.jsonl"))
