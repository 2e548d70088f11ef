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

import contextvars
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
#: The name every caller has on a server without security (loopback, all admin).
LOCAL = "local"
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")

#: The role each RPC needs; methods not listed need admin (secure by default).
METHOD_ROLES = {
    "/edgetl.v1.InferenceService/Classify": "inference",
    "/edgetl.v1.InferenceService/ClassifyStream": "inference",
    "/edgetl.v1.InferenceService/ClassifyTasks": "inference",
    "/edgetl.v1.ModelService/ListBackbones": "operator",
    "/edgetl.v1.ModelService/ListTasks": "operator",
    "/edgetl.v1.ModelService/GetTask": "operator",
    "/edgetl.v1.ModelService/CreateTask": "admin",
    "/edgetl.v1.ModelService/AddClass": "admin",
    "/edgetl.v1.ModelService/WhoAmI": "inference",
    "/edgetl.v1.ModelService/GetServerStats": "operator",
    "/edgetl.v1.ReviewService/ListReviewItems": "operator",
    "/edgetl.v1.ReviewService/GetReviewItem": "operator",
    "/edgetl.v1.ReviewService/ResolveReviewItems": "operator",
    "/edgetl.v1.ReviewService/GetReviewSummary": "operator",
    "/edgetl.v1.ReviewService/GetLiveAccuracy": "operator",
    "/edgetl.v1.ReviewService/GetCapturePolicy": "operator",
    "/edgetl.v1.ReviewService/SetCapturePolicy": "admin",
    "/edgetl.v1.LabelService/AddLabel": "operator",
    "/edgetl.v1.LabelService/GetLabelCounts": "operator",
    "/edgetl.v1.TrainingService/WatchJob": "operator",
    "/edgetl.v1.TrainingService/ListJobs": "operator",
    "/edgetl.v1.TrainingService/StartTraining": "admin",
    "/edgetl.v1.TrainingService/CancelJob": "admin",
    "/edgetl.v1.AdapterService/ListAdapters": "operator",
    "/edgetl.v1.AdapterService/ActivateAdapter": "admin",
    "/edgetl.v1.AdapterService/Rollback": "admin",
    # Confirming a good part is an operator's call, like a label; it is gated and can be rolled back.
    "/edgetl.v1.AdapterService/EnrollGood": "operator",
    # The sensitivity the issue gives the person at the line; every change is a version (audited, rolled back by an admin).
    "/edgetl.v1.AdapterService/SetAnomalyThreshold": "operator",
    # KServe v2: readiness and metadata go with inference (a camera checks before it sends).
    "/inference.GRPCInferenceService/ServerLive": "inference",
    "/inference.GRPCInferenceService/ServerReady": "inference",
    "/inference.GRPCInferenceService/ModelReady": "inference",
    "/inference.GRPCInferenceService/ServerMetadata": "inference",
    "/inference.GRPCInferenceService/ModelMetadata": "inference",
    "/inference.GRPCInferenceService/ModelInfer": "inference",
    "/inference.GRPCInferenceService/RepositoryIndex": "operator",
    "/inference.GRPCInferenceService/RepositoryModelLoad": "admin",
    "/inference.GRPCInferenceService/RepositoryModelUnload": "admin",
}


#: Calls that only read: they are not audited (the terminal polls them every
#: few seconds; the audit log is for what people change).
READ_ONLY = frozenset(
    f"/{service}/{name}"
    for service, names in {
        "edgetl.v1.ModelService": ("ListBackbones", "ListTasks", "GetTask", "WhoAmI", "GetServerStats"),
        "edgetl.v1.LabelService": ("GetLabelCounts",),
        "edgetl.v1.TrainingService": ("WatchJob", "ListJobs"),
        "edgetl.v1.AdapterService": ("ListAdapters",),
        "edgetl.v1.ReviewService": ("ListReviewItems", "GetReviewItem", "GetReviewSummary", "GetLiveAccuracy", "GetCapturePolicy"),
        "inference.GRPCInferenceService": ("RepositoryIndex",),
    }.items()
    for name in names
)


@dataclass(frozen=True)
class Caller:
    name: str
    role: str


#: The caller of the RPC being handled, set by the interceptor for the call's
#: task; servicers read it to record who did something (review items,
#: resolutions), never to decide what is allowed (the interceptor does that).
CURRENT_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("edgetl_caller", default=None)


def current_caller_name(default: str = "") -> str:
    caller = CURRENT_CALLER.get()
    return caller.name if caller is not None else default


def operator_name(claimed: str) -> str:
    """Who a label, resolution or adapter change is recorded as: with security, the
    authenticated caller; without it (every local caller is "local"), the name the
    request claims (its `operator_id`), or "local"."""
    operator = current_caller_name(LOCAL)
    return (claimed or LOCAL) if operator == LOCAL else operator


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
            return Caller("anonymous" if self.enforcing else LOCAL, "admin")
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


class CertificateFiles:
    """The server's certificate, key and client CA, re-read when they change on disk.

    gRPC asks :meth:`fetch` at the start of every new connection's handshake
    (``grpc.dynamic_ssl_server_credentials``). Connections already open keep
    the certificate they were made with; new ones get the new files. So a
    certificate is renewed by replacing the files (rename over them, as
    cert-manager and most tools do), with no restart and no dropped calls.
    Files that cannot be read, or only half written, are logged and the last
    good configuration stays in use.
    """

    def __init__(self, settings: Settings):
        self.paths = [Path(p) for p in (settings.tls_cert, settings.tls_key, settings.client_ca) if p]
        self.cert, self.key = Path(settings.tls_cert), Path(settings.tls_key)
        self.client_ca = Path(settings.client_ca) if settings.client_ca else None
        self._stamp = self._stat()
        self.initial = self._configuration()  # raises ConfigError: at start-up, bad files stop the server
        self.reloads = 0

    def _stat(self) -> tuple:
        stamp = []
        for path in self.paths:
            try:
                st = path.stat()
                stamp.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    def _configuration(self):
        try:
            cert, key = self.cert.read_bytes(), self.key.read_bytes()
            ca = self.client_ca.read_bytes() if self.client_ca else None
        except OSError as exc:
            raise ConfigError(f"[security] cannot read {exc.filename}: {exc.strerror}") from exc
        for path, data, marker in ((self.cert, cert, b"CERTIFICATE"), (self.key, key, b"PRIVATE KEY"), (self.client_ca, ca, b"CERTIFICATE")):
            if data is not None and (b"-----BEGIN" not in data or marker not in data or b"-----END" not in data):
                raise ConfigError(f"[security] {path} is not a PEM {marker.decode().lower()} (or is half written)")
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch(self):
        """New configuration if the files changed since the last look, else None (keep the current one)."""
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        try:
            configuration = self._configuration()
        except ConfigError as exc:
            log.error("certificate files changed but cannot be used (%s); new connections keep the previous certificate", exc)
            return None
        self._stamp = stamp
        self.reloads += 1
        log.info("certificate files changed: new connections use the new certificate (reload %d)", self.reloads)
        return configuration


def server_credentials(settings: Settings) -> tuple[grpc.ServerCredentials, CertificateFiles] | None:
    """TLS credentials that follow the certificate files, or None without TLS."""
    if not settings.tls_cert and not settings.tls_key:
        if settings.client_ca:
            raise ConfigError("[security] client_ca needs tls_cert and tls_key too")
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise ConfigError("[security] tls_cert and tls_key go together")
    files = CertificateFiles(settings)
    credentials = grpc.dynamic_ssl_server_credentials(files.initial, files.fetch, require_client_authentication=files.client_ca is not None)
    return credentials, files


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
