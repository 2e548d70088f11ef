"""Who may call what: TLS, identities, roles, and the bind-address rule.

Roles, each including the ones before it:

- ``inference``: classify (cameras, PLCs);
- ``operator``: label, list tasks and adapters, watch jobs (operator terminals);
- ``admin``: create tasks, train, cancel, activate, roll back (engineers).

Identity comes from the client certificate (CN or a SAN, mapped to a role in
``[security.identities]``) or from a bearer token whose sha256 is in
``[security.tokens]``, for sites without a PKI. No or bad credentials:
UNAUTHENTICATED; a known caller without the role: PERMISSION_DENIED. Health
checks and reflection are open, so probes work. With no security configured
the server listens on loopback only, and everyone on this machine is admin.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import grpc

from edgetl.errors import ConfigError, PermissionDenied, Unauthenticated
from edgetl.settings import Settings

log = logging.getLogger(__name__)

ROLES = ("inference", "operator", "admin")
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")

#: The role each RPC needs; methods not listed need admin (secure by default).
METHOD_ROLES = {
    "/edgetl.v1.InferenceService/Classify": "inference",
    "/edgetl.v1.InferenceService/ClassifyStream": "inference",
    "/edgetl.v1.ModelService/ListBackbones": "operator",
    "/edgetl.v1.ModelService/ListTasks": "operator",
    "/edgetl.v1.ModelService/GetTask": "operator",
    "/edgetl.v1.ModelService/CreateTask": "admin",
    "/edgetl.v1.LabelService/AddLabel": "operator",
    "/edgetl.v1.LabelService/GetLabelCounts": "operator",
    "/edgetl.v1.TrainingService/WatchJob": "operator",
    "/edgetl.v1.TrainingService/ListJobs": "operator",
    "/edgetl.v1.TrainingService/StartTraining": "admin",
    "/edgetl.v1.TrainingService/CancelJob": "admin",
    "/edgetl.v1.AdapterService/ListAdapters": "operator",
    "/edgetl.v1.AdapterService/ActivateAdapter": "admin",
    "/edgetl.v1.AdapterService/Rollback": "admin",
}


@dataclass(frozen=True)
class Caller:
    name: str
    role: str


def required_role(method: str) -> str | None:
    """None for open methods (health, reflection)."""
    if method.lstrip("/").split("/")[0] in OPEN_SERVICES:
        return None
    return METHOD_ROLES.get(method, "admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Authenticator:
    """Checks each call against the settings' identities and tokens."""

    def __init__(self, settings: Settings):
        self.tls = bool(settings.tls_cert)
        self.mutual = bool(settings.client_ca)
        self.identities = dict(settings.identities)
        self.tokens = {k.lower(): v for k, v in settings.tokens.items()}
        for name, role in self.identities.items():
            _check_role(role, f"[security.identities] {name!r}")
        for digest, entry in self.tokens.items():
            if not isinstance(entry, dict) or "role" not in entry:
                raise ConfigError(f"[security.tokens] {digest[:12]}…: expected {{ name = ..., role = ... }}")
            _check_role(entry["role"], f"[security.tokens] {entry.get('name', digest[:12])!r}")
        # Without client certificates or tokens there is no one to tell apart.
        self.enforcing = self.mutual or bool(self.tokens)

    def authorize(self, method: str, context: grpc.aio.ServicerContext) -> Caller:
        needed = required_role(method)
        if needed is None or not self.enforcing:
            return Caller("anonymous" if self.enforcing else "local", "admin")
        caller = self.identify(context)
        if ROLES.index(caller.role) < ROLES.index(needed):
            denied = PermissionDenied(f"{caller.name} has role {caller.role!r}; {method.rsplit('/', 1)[-1]} needs {needed!r}")
            denied.caller = caller  # so the audit log names who was refused
            raise denied
        return caller

    def identify(self, context: grpc.aio.ServicerContext) -> Caller:
        metadata = dict(context.invocation_metadata() or ())
        auth = metadata.get("authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            entry = self.tokens.get(hash_token(token.strip())) if scheme.lower() == "bearer" else None
            if entry is None:
                raise Unauthenticated("the bearer token is not known to this server")
            return Caller(str(entry.get("name", "token")), entry["role"])
        if self.mutual:
            names = _certificate_names(context)
            for name in names:
                if name in self.identities:
                    return Caller(name, self.identities[name])
            if names:
                raise PermissionDenied(f"certificate {names[0]!r} is valid but has no role; add it to [security.identities]")
        raise Unauthenticated("no credentials: send a client certificate or an 'authorization: Bearer <token>' header")


def _certificate_names(context) -> list[str]:
    auth = context.auth_context() or {}
    names = [v.decode() for v in auth.get("x509_common_name", [])]
    names += [v.decode() for v in auth.get("x509_subject_alternative_name", [])]
    return names


def _check_role(role: str, where: str) -> None:
    if role not in ROLES:
        raise ConfigError(f"{where}: unknown role {role!r}; roles are {', '.join(ROLES)}")


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not settings.tls_cert and not settings.tls_key:
        if settings.client_ca:
            raise ConfigError("[security] client_ca needs tls_cert and tls_key too")
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise ConfigError("[security] tls_cert and tls_key go together")
    try:
        cert, key = Path(settings.tls_cert).read_bytes(), Path(settings.tls_key).read_bytes()
        ca = Path(settings.client_ca).read_bytes() if settings.client_ca else None
    except OSError as exc:
        raise ConfigError(f"[security] cannot read {exc.filename}: {exc.strerror}") from exc
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def check_bind(settings: Settings) -> None:
    """Refuse a non-loopback address without TLS or tokens unless --insecure."""
    if _is_loopback(settings.host) or settings.tls_cert or settings.tokens:
        return
    if not settings.insecure:
        raise ConfigError(
            f"refusing to listen on {settings.host} without TLS or tokens: anyone on the network could train and "
            "activate adapters; configure [security] or pass --insecure"
        )
    log.warning("listening on %s WITHOUT TLS or tokens (--insecure): every caller on the network is admin", settings.host)


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
