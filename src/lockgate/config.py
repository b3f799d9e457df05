"""The config file: YAML, validated by pydantic, errors that name the field and line."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, field and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Timeouts(_Strict):
    connect: float = Field(5.0, gt=0)
    read: float = Field(120.0, gt=0)
    total: float = Field(300.0, gt=0)


class Upstream(_Strict):
    provider: Literal["local", "openai", "anthropic"]
    model: str
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    weight: float = Field(1.0, ge=0, allow_inf_nan=False)  # 0: only when the others are full
    max_concurrency: int = Field(64, ge=1)
    timeout: Timeouts = Field(default_factory=Timeouts)
    # local provider only
    n_ctx: int = Field(2048, ge=128)
    n_threads: int | None = Field(None, ge=1)


class Price(_Strict):
    input_per_mtok: float = Field(0.0, ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(0.0, ge=0, allow_inf_nan=False)


class AccessRule(_Strict):
    """Who may use a catalog model, as a Cedar condition; everyone else is re-routed or denied."""

    allow_when: str  # e.g. principal.programs.contains("glasswing")
    effect: Literal["reroute", "deny"] = "deny"
    fallback: str | None = None
    notice: str = ""


class ModelEntry(_Strict):
    name: str
    description: str = ""
    deployments: list[Upstream] = Field(default_factory=list)
    price: Price = Field(default_factory=Price)
    fallbacks: list[str] = Field(default_factory=list)
    safeguards: str | None = None  # default safeguard profile (see `safeguards.profiles`)
    safeguards_by_program: dict[str, str] = Field(default_factory=dict)  # program -> profile, e.g. glasswing: defender
    default_max_tokens: int = Field(1024, ge=1)
    resume: bool = False
    access: AccessRule | None = None

    @model_validator(mode="before")
    @classmethod
    def _upstream_shorthand(cls, data: Any) -> Any:
        # `upstream: {...}` is shorthand for a single deployment.
        if isinstance(data, dict) and "upstream" in data:
            data = dict(data)
            up = data.pop("upstream")
            data.setdefault("deployments", [])
            data["deployments"] = [up, *data["deployments"]]
        return data

    @model_validator(mode="after")
    def _has_deployment(self) -> "ModelEntry":
        if not self.deployments:
            raise ValueError(f"model {self.name!r} needs an `upstream` or `deployments`")
        return self


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    trusted_proxies: list[str] = Field(default_factory=list)


class Config(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    database_url: str | None = None
    models: list[ModelEntry] = Field(default_factory=list)
    # Sections owned by later stages; kept as plain data until their stage reads them.
    identity: dict[str, Any] = Field(default_factory=dict)
    routing: dict[str, Any] = Field(default_factory=dict)
    directives: dict[str, Any] = Field(default_factory=dict)
    safeguards: dict[str, Any] = Field(default_factory=dict)
    audit: dict[str, Any] = Field(default_factory=dict)
    metering: dict[str, Any] = Field(default_factory=dict)
    monitor: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        seen: set[str] = set()
        for m in self.models:
            if m.name in seen:
                raise ValueError(f"model name {m.name!r} appears twice")
            seen.add(m.name)
        for m in self.models:
            for fb in m.fallbacks:
                if fb not in seen:
                    raise ValueError(f"model {m.name!r}: fallback {fb!r} is not in the catalog")
        return self

    def model(self, name: str) -> ModelEntry | None:
        return next((m for m in self.models if m.name == name), None)


DEFAULT_MODELS = [
    {
        "name": "smollm2-135m",
        "description": "SmolLM2-135M-Instruct, bundled, runs in-process on the CPU",
        "upstream": {"provider": "local", "model": "bundled:smollm2-135m"},
        "safeguards": "strict",  # the embedded default is protected like any public model
    }
]


def home() -> Path:
    return Path(os.environ.get("LOCKGATE_HOME", ".lockgate")).resolve()


def database_url(cfg: Config | None = None) -> str:
    env = os.environ.get("LOCKGATE_DATABASE_URL")
    if env:
        return env
    if cfg is not None and cfg.database_url:
        return cfg.database_url
    h = home()
    h.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{h / 'lockgate.db'}"


def _line_map(text: str) -> dict[tuple, int]:
    """Maps each path in the YAML document to its 1-based line, for error messages."""
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = path + (k.value,)
                lines[key] = k.start_mark.line + 1
                walk(v, key)
                lines[key] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, path + (i,))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def _interpolate(value: Any, path: tuple, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, path + (k,), where) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, path + (i,), where) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def sub(m: re.Match) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            dotted = ".".join(str(p) for p in path)
            raise ConfigError(f"{where}: {dotted}: environment variable {var} is not set")

        return _ENV.sub(sub, value)
    return value


# Sections owned by a stage, validated here so a typo fails at load time with its line, not at start-up.
SECTIONS = {
    "identity": "lockgate.identity.settings:IdentitySettings",
    "routing": "lockgate.routing.stage:Settings",
    "directives": "lockgate.directives.stage:Settings",
    "safeguards": "lockgate.safeguards.stage:Settings",
    "audit": "lockgate.audit.settings:AuditSettings",
    "metering": "lockgate.metering.settings:MeteringSettings",
    "monitor": "lockgate.monitor.settings:MonitorSettings",
}


def _section_errors(conf: Config) -> list[dict]:
    import importlib

    errors = []
    for name, target in SECTIONS.items():
        data = getattr(conf, name)
        if not data:
            continue
        mod, _, cls = target.partition(":")
        try:
            model = getattr(importlib.import_module(mod), cls)
        except (ImportError, AttributeError):
            continue  # that stage is not installed in this build
        try:
            model.model_validate(data)
        except ValidationError as e:
            errors += [{**err, "loc": (name, *err["loc"])} for err in e.errors()]
    return errors


def _profile_errors(conf: Config) -> list[dict]:
    """Models must name safeguard profiles that exist: `serve` refuses to start otherwise, so say it here too."""
    try:
        from lockgate.safeguards.profiles import default_profiles
    except ImportError:  # pragma: no cover - safeguards not installed in this build
        return []
    known = set(default_profiles()) | set((conf.safeguards or {}).get("profiles") or {})
    errors = []
    for i, m in enumerate(conf.models):
        refs = [(("safeguards",), m.safeguards),
                *((("safeguards_by_program", p), n) for p, n in m.safeguards_by_program.items())]
        for loc, name in refs:
            if name and name not in known:
                errors.append({"loc": ("models", i, *loc),
                               "msg": f"unknown safeguard profile {name!r} (known: {', '.join(sorted(known))})"})
    return errors


def _describe(errors: list[dict], text: str, where: str) -> ConfigError:
    lines = _line_map(text)
    problems = []
    for err in errors:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # `upstream:` shorthand is validated as deployments[0]; point back at what was written.
        if "deployments" in loc:
            i = loc.index("deployments")
            alt = loc[:i] + ("upstream",) + loc[i + 2 :]
            if loc[: i + 1] not in lines and alt[: i + 1] in lines:
                loc = alt
        line = None
        for n in range(len(loc), -1, -1):
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        at = f" (line {line})" if line else ""
        problems.append(f"  {dotted}{at}: {err['msg']}")
    return ConfigError(f"{where}: invalid config:\n" + "\n".join(problems))


def parse(text: str, where: str = "<config>") -> Config:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping")
    data = _interpolate(data, (), where)
    try:
        conf = Config.model_validate(data)
    except ValidationError as e:
        raise _describe(e.errors(), text, where) from None
    errors = _section_errors(conf) or _profile_errors(conf)
    if errors:
        raise _describe(errors, text, where)
    return conf


def _model_file_errors(conf: Config) -> list[dict]:
    """Local deployments whose model file is missing: `serve` starts, but every request to them fails."""
    from lockgate.providers.local import resolve_model_path

    errors = []
    for i, m in enumerate(conf.models):
        for j, up in enumerate(m.deployments):
            if up.provider != "local":
                continue
            try:
                path = resolve_model_path(up.model)
            except ValueError as e:
                errors.append({"loc": ("models", i, "deployments", j, "model"), "msg": str(e)})
                continue
            if not path.is_file():
                errors.append({"loc": ("models", i, "deployments", j, "model"), "msg": f"model file not found: {path}"})
    return errors


def check(path: str | Path) -> Config:
    """What `lockgate check-config` checks: :func:`load`, and that local deployments' model files exist."""
    conf = load(path)
    errors = _model_file_errors(conf)
    if errors:
        raise _describe(errors, Path(path).read_text(encoding="utf-8"), str(path))
    return conf


def load(path: str | Path | None) -> Config:
    """Loads a config file, or the embedded default (one bundled local model) when path is None."""
    if path is None:
        return Config.model_validate({"models": DEFAULT_MODELS})
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    return parse(text, str(p))
