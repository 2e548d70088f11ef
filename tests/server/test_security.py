"""Transport security and roles through a real server: mutual TLS, tokens, the bind rule, the audit log.

Certificates are made here (a CA, a server certificate for localhost, client
certificates for a camera, an engineer and a stranger).
"""

from __future__ import annotations

import datetime
import ipaddress
import json

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc
from edgetl.errors import ConfigError
from edgetl.server.security import hash_token
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.conftest import ServerThread, encode, make_settings


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject_cn, key, issuer_cn=None, issuer_key=None, ca=False, sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn or subject_cn)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("edgetl test CA", ca_key, ca=True)
    files = {"ca.pem": _pem(ca)}
    server_key = _key()
    files["server.pem"] = _pem(_cert("localhost", server_key, "edgetl test CA", ca_key, sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]))
    files["server.key"] = _pem(server_key)
    for who in ("camera-4", "engineer", "stranger"):
        key = _key()
        files[f"{who}.pem"] = _pem(_cert(who, key, "edgetl test CA", ca_key))
        files[f"{who}.key"] = _pem(key)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


@pytest.fixture
def mtls_server(data_dir, pki):
    settings = make_settings(
        data_dir, tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"), client_ca=str(pki / "ca.pem"),
        identities={"camera-4": "inference", "engineer": "admin"},
    )
    server = _Secure(settings, pki)
    yield server
    server.stop()


class _Secure(ServerThread):
    def __init__(self, settings, pki):
        self.pki = pki
        super().__init__(settings)
        self.channel.close()
        self.port = self.address.rsplit(":", 1)[1]

    def channel_for(self, who: str | None):
        ca = (self.pki / "ca.pem").read_bytes()
        if who is None:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        else:
            credentials = grpc.ssl_channel_credentials(ca, (self.pki / f"{who}.key").read_bytes(), (self.pki / f"{who}.pem").read_bytes())
        return grpc.secure_channel(f"localhost:{self.port}", credentials)


def _classify(channel, chelsea_rgb):
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    return stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=encode(chelsea_rgb))), timeout=30)


def test_mutual_tls_rejects_a_client_without_a_certificate(mtls_server, chelsea_rgb):
    with pytest.raises(grpc.RpcError) as info:
        _classify(mtls_server.channel_for(None), chelsea_rgb)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake itself fails


def test_plaintext_client_cannot_talk_to_a_tls_server(mtls_server, chelsea_rgb):
    with pytest.raises(grpc.RpcError):
        _classify(grpc.insecure_channel(f"127.0.0.1:{mtls_server.port}"), chelsea_rgb)


def test_a_camera_certificate_classifies_but_cannot_train(mtls_server, chelsea_rgb):
    camera = mtls_server.channel_for("camera-4")
    assert _classify(camera, chelsea_rgb).label == "Egyptian cat"
    with pytest.raises(grpc.RpcError) as info:
        adapt_pb2_grpc.TrainingServiceStub(camera).StartTraining(adapt_pb2.StartTrainingRequest(task="x", method="head"), timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "camera-4 has role 'inference'; StartTraining needs 'admin'" in info.value.details()


def test_an_engineer_certificate_is_admin(mtls_server):
    engineer = mtls_server.channel_for("engineer")
    task = model_pb2_grpc.ModelServiceStub(engineer).CreateTask(model_pb2.CreateTaskRequest(name="weld", class_names=["ok", "crack"]), timeout=30)
    assert task.name == "weld"


def test_a_valid_certificate_without_a_role_is_denied(mtls_server, chelsea_rgb):
    with pytest.raises(grpc.RpcError) as info:
        _classify(mtls_server.channel_for("stranger"), chelsea_rgb)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED and "[security.identities]" in info.value.details()


def test_health_is_open_to_probes(mtls_server):
    health = health_pb2_grpc.HealthStub(mtls_server.channel_for("stranger"))
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def token_server(data_dir):
    tokens = {hash_token("op-secret"): {"name": "terminal-2", "role": "operator"}, hash_token("cam-secret"): {"name": "plc-1", "role": "inference"}}
    server = ServerThread(make_settings(data_dir, tokens=tokens))
    yield server
    server.stop()


def _with_token(token):
    return (("authorization", f"Bearer {token}"),)


def test_tokens_authenticate_and_roles_apply(token_server, chelsea_rgb):
    channel = token_server.channel
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    request = inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=encode(chelsea_rgb)))
    for metadata, code in (((), grpc.StatusCode.UNAUTHENTICATED), (_with_token("wrong"), grpc.StatusCode.UNAUTHENTICATED)):
        with pytest.raises(grpc.RpcError) as info:
            stub.Classify(request, metadata=metadata, timeout=10)
        assert info.value.code() == code
    assert stub.Classify(request, metadata=_with_token("cam-secret"), timeout=30).label == "Egyptian cat"
    models = model_pb2_grpc.ModelServiceStub(channel)
    assert [t.name for t in models.ListTasks(model_pb2.ListTasksRequest(), metadata=_with_token("op-secret"), timeout=10).tasks] == ["imagenet"]
    with pytest.raises(grpc.RpcError) as info:
        models.CreateTask(model_pb2.CreateTaskRequest(name="x", class_names=["a", "b"]), metadata=_with_token("op-secret"), timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED and "terminal-2 has role 'operator'" in info.value.details()


def test_kserve_calls_are_under_the_same_roles(token_server, chelsea_rgb, data_dir):
    """A Triton client with a camera's token may infer but not load models; the refusal is audited."""
    import numpy as np
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=token_server.address)
    camera = {"authorization": "Bearer cam-secret"}
    with pytest.raises(InferenceServerException) as info:
        client.is_model_ready("imagenet")  # no token
    assert info.value.status() == "StatusCode.UNAUTHENTICATED"
    images = triton.InferInput("images", [1], "BYTES")
    images.set_data_from_numpy(np.array([encode(chelsea_rgb)], dtype=np.object_))
    assert client.infer("imagenet", [images], headers=camera).as_numpy("labels").tolist() == [b"Egyptian cat"]
    with pytest.raises(InferenceServerException) as info:
        client.load_model("imagenet", headers=camera)
    assert info.value.status() == "StatusCode.PERMISSION_DENIED" and "RepositoryModelLoad needs 'admin'" in info.value.message()
    client.close()
    entries = [json.loads(line) for line in (data_dir / "audit.jsonl").read_text().splitlines()]
    assert {"action": "RepositoryModelLoad", "outcome": "PERMISSION_DENIED", "task": "imagenet"}.items() <= entries[-1].items()


def test_actions_are_audited_and_reads_only_when_refused(token_server, data_dir):
    models = model_pb2_grpc.ModelServiceStub(token_server.channel)
    with pytest.raises(grpc.RpcError):
        models.CreateTask(model_pb2.CreateTaskRequest(name="x", class_names=["a", "b"]), metadata=_with_token("op-secret"), timeout=10)
    models.ListTasks(model_pb2.ListTasksRequest(), metadata=_with_token("op-secret"), timeout=10)  # a read: not recorded
    with pytest.raises(grpc.RpcError):
        models.ListTasks(model_pb2.ListTasksRequest(), metadata=_with_token("cam-secret"), timeout=10)  # a refused read: recorded
    entries = [json.loads(line) for line in (data_dir / "audit.jsonl").read_text().splitlines()]
    assert {"who": "terminal-2", "role": "operator", "action": "CreateTask", "outcome": "PERMISSION_DENIED", "name": "x"}.items() <= entries[0].items()
    assert len(entries) == 2 and entries[1]["action"] == "ListTasks" and entries[1]["outcome"] == "PERMISSION_DENIED"


def test_non_loopback_without_security_needs_insecure(data_dir):
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0 without TLS or tokens"):
        ServerThread(make_settings(data_dir, host="0.0.0.0"))
    server = ServerThread(make_settings(data_dir, host="0.0.0.0", insecure=True))
    server.stop()


def test_cli_flags_reach_a_mutual_tls_server(mtls_server, pki, tmp_path, chelsea_rgb):
    import subprocess
    import sys

    image = tmp_path / "cat.png"
    image.write_bytes(encode(chelsea_rgb))
    base = [sys.executable, "-m", "edgetl", "predict", "--server", f"localhost:{mtls_server.port}", "--task", "imagenet", "--tls-ca", str(pki / "ca.pem")]
    ok = subprocess.run([*base, "--tls-cert", str(pki / "camera-4.pem"), "--tls-key", str(pki / "camera-4.key"), str(image)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "Egyptian cat" in ok.stdout, ok.stderr
    denied = subprocess.run([sys.executable, "-m", "edgetl", "tasks", "create", "t", "--classes", "a,b", "--server", f"localhost:{mtls_server.port}", "--tls-ca", str(pki / "ca.pem"), "--tls-cert", str(pki / "camera-4.pem"), "--tls-key", str(pki / "camera-4.key")], capture_output=True, text=True, timeout=60)
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr


def test_label_import_reports_an_auth_failure_instead_of_creating_the_task(token_server, tmp_path):
    """Only NOT_FOUND means "create the task"; any other failure is the one-line error it is."""
    import subprocess
    import sys

    from edgetl.synthetic import write_dataset

    dataset = write_dataset(tmp_path / "ds", "brick", classes=("ok", "pit"), per_class=2, size=32)
    result = subprocess.run([sys.executable, "-m", "edgetl", "label", "import", "--task", "t", str(dataset), "--server", token_server.address], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "UNAUTHENTICATED" in result.stderr and "created task" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def _issue(root, ca_name: str, files: dict[str, str]) -> None:
    """A new CA and, signed by it, a server certificate for localhost and an 'engineer' client certificate."""
    ca_key = _key()
    (root / files["ca"]).write_bytes(_pem(_cert(ca_name, ca_key, ca=True)))
    server_key = _key()
    server = _cert("localhost", server_key, ca_name, ca_key, sans=[x509.DNSName("localhost")])
    client_key = _key()
    client = _cert("engineer", client_key, ca_name, ca_key)
    for name, data in (("server.pem", _pem(server)), ("server.key", _pem(server_key)), ("engineer.pem", _pem(client)), ("engineer.key", _pem(client_key))):
        (root / files[name]).write_bytes(data)


def test_certificates_are_reloaded_without_a_restart(data_dir, tmp_path, chelsea_rgb):
    """Replace the server's certificate files (a new CA here, so old and new are told apart): new
    connections use the new ones, the server never restarts, and broken files are not taken up."""
    live, old, new = tmp_path / "live", tmp_path / "old", tmp_path / "new"
    for d in (live, old, new):
        d.mkdir()
    names = {n: n for n in ("ca", "server.pem", "server.key", "engineer.pem", "engineer.key")}
    names["ca"] = "ca.pem"
    _issue(old, "old CA", names)
    _issue(new, "new CA", names)
    for name in ("server.pem", "server.key", "ca.pem"):
        (live / name).write_bytes((old / name).read_bytes())
    settings = make_settings(
        data_dir, tls_cert=str(live / "server.pem"), tls_key=str(live / "server.key"), client_ca=str(live / "ca.pem"),
        identities={"engineer": "admin"},
    )
    server = _Secure(settings, old)

    def channel(pki):
        creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / "engineer.key").read_bytes(), (pki / "engineer.pem").read_bytes())
        # A private subchannel pool: each channel makes its own connection (its own handshake).
        return grpc.secure_channel(f"localhost:{server.port}", creds, options=[("grpc.use_local_subchannel_pool", 1)])

    try:
        assert _classify(channel(old), chelsea_rgb).label == "Egyptian cat"
        with pytest.raises(grpc.RpcError):
            _classify(channel(new), chelsea_rgb)

        # A half-written certificate is not taken up: the old one goes on serving.
        (live / "server.pem").write_bytes((new / "server.pem").read_bytes()[:40])
        assert _classify(channel(old), chelsea_rgb).label == "Egyptian cat"
        assert server.server.certificates.reloads == 0

        for name in ("server.key", "ca.pem", "server.pem"):  # as cert-manager does: write aside, rename over
            (live / f".{name}.tmp").write_bytes((new / name).read_bytes())
            (live / f".{name}.tmp").rename(live / name)
        assert _classify(channel(new), chelsea_rgb).label == "Egyptian cat"
        with pytest.raises(grpc.RpcError) as info:
            _classify(channel(old), chelsea_rgb)  # the old CA's certificates are no longer trusted either way
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert server.server.certificates.reloads == 1
    finally:
        server.stop()


def test_a_certificate_file_that_is_not_pem_stops_the_start(data_dir, tmp_path):
    (tmp_path / "server.pem").write_text("not a certificate")
    (tmp_path / "server.key").write_text("not a key")
    with pytest.raises(ConfigError, match="is not a PEM certificate"):
        ServerThread(make_settings(data_dir, tls_cert=str(tmp_path / "server.pem"), tls_key=str(tmp_path / "server.key")))


def test_every_rpc_has_an_explicit_role():
    """A new RPC would fall back to admin: safe, but it should be a decision, written in the table."""
    from edgetl.api.kserve import grpc_service_pb2
    from edgetl.api.v1 import adapt_pb2, inference_pb2, model_pb2, review_pb2
    from edgetl.server.security import METHOD_ROLES, READ_ONLY

    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (inference_pb2, model_pb2, adapt_pb2, review_pb2, grpc_service_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    unlisted = methods - set(METHOD_ROLES)
    assert not unlisted, f"RPCs without a role in METHOD_ROLES: {sorted(unlisted)}"
    assert READ_ONLY <= methods


def test_the_terminal_of_a_tls_server_speaks_https_and_signs_people_in_with_tokens(data_dir, pki):
    """Mutual TLS on the gRPC port: the embedded terminal serves HTTPS with the server's certificate,
    reaches the server over its Unix socket without a client certificate, and people sign in with tokens."""
    import http.cookiejar
    import ssl
    import urllib.request

    settings = make_settings(
        data_dir, tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"), client_ca=str(pki / "ca.pem"),
        identities={"camera-4": "inference"}, tokens={hash_token("op-secret"): {"name": "anna", "role": "operator"}},
    )
    server = _Secure(settings, pki)
    try:
        url = server.server.terminal.url
        assert url.startswith("https://127.0.0.1:")
        jar = http.cookiejar.CookieJar()
        context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), urllib.request.HTTPCookieProcessor(jar))
        with opener.open(url + "api/session", timeout=10) as response:
            session = json.loads(response.read())
            assert "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]
        assert session["signed_in"] is False and session["security"] is True
        sign_in = urllib.request.Request(
            url + "api/session", data=json.dumps({"token": "op-secret"}).encode(), method="POST",
            headers={"Content-Type": "application/json", "X-CSRF-Token": session["csrf"]},
        )
        with opener.open(sign_in, timeout=10) as response:
            assert json.loads(response.read())["name"] == "anna"
        with opener.open(url + "api/tasks", timeout=10) as response:
            assert [t["name"] for t in json.loads(response.read())["tasks"]] == ["imagenet"]
        with pytest.raises(Exception):  # no plain HTTP on that port
            urllib.request.urlopen(url.replace("https://", "http://") + "api/session", timeout=10)
        assert oct(server.server.socket_path.stat().st_mode & 0o777) == "0o600"
    finally:
        server.stop()


def test_a_server_on_a_data_directory_called_edgetl_data_stops_cleanly_and_keeps_it(tmp_path, session_store):
    """The default data directory is `edgetl-data`; stopping once tried to remove it as if it were the
    socket's temporary directory (and raised, since it is not empty). Long paths get a temporary one,
    which is removed."""
    from tests.conftest import ServerThread, make_settings

    for parent in (tmp_path, tmp_path / ("long-" * 20)):  # short: the socket in the data dir; long: in a temp dir
        data = parent / "edgetl-data"
        data.mkdir(parents=True)
        (data / "store").symlink_to(session_store, target_is_directory=True)
        server = ServerThread(make_settings(data))
        socket_dir = server.server.socket_path.parent
        assert (socket_dir == data.resolve()) == (len(str(data.resolve() / "edgetl.sock")) <= 100)
        server.stop()
        assert data.is_dir() and (data / "edgetl.db").is_file()
        assert not server.server.socket_path.exists()
        assert socket_dir.exists() == (socket_dir == data.resolve())
