"""The terminal's HTTP API against a real server: sessions, sign-in, CSRF, errors people read, uploads, SSE.

Plain HTTP with a cookie jar (urllib), as a browser would send it; the
browser itself is in test_browser.py.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

from edgetl.server.security import hash_token
from tests.adapt_helpers import create_and_label, png, train
from tests.conftest import ServerThread, make_settings

TOKENS = {
    hash_token("op-token"): {"name": "anna", "role": "operator"},
    hash_token("admin-token"): {"name": "ben", "role": "admin"},
    hash_token("camera-token"): {"name": "plc-7", "role": "inference"},
}


class Browser:
    """Just enough of a browser: cookies, JSON, the CSRF header the page sends."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = ""

    def call(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None, csrf: bool = True):
        headers = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if csrf and method != "GET" and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=60) as response:
                payload = response.read()
                return response.status, _json(payload), response.headers
        except urllib.error.HTTPError as error:
            return error.code, _json(error.read()), error.headers

    def session(self):
        status, body, headers = self.call("GET", "/api/session")
        assert status == 200, body
        self.csrf = body["csrf"]
        return body, headers

    def upload(self, task: str, class_name: str, filename: str, data: bytes):
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="class_name"\r\n\r\n{class_name}\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode(),
            data, f"\r\n--{boundary}--\r\n".encode(),
        ]
        return self.call("POST", f"/api/tasks/{task}/labels", raw=b"".join(parts), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


def _json(payload: bytes):
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload


def test_without_security_the_page_works_without_sign_in(server):
    b = Browser(server.server.terminal.url)
    status, page, headers = b.call("GET", "/")
    assert status == 200 and b"edgetl terminal" in page and "script-src 'self'" in headers["Content-Security-Policy"]
    session, headers = b.session()
    assert (session["signed_in"], session["name"], session["role"], session["security"]) == (True, "local", "admin", False)
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and session["csrf"] not in cookie  # the CSRF token is not the cookie
    status, tasks, _ = b.call("GET", "/api/tasks")
    assert status == 200 and [t["name"] for t in tasks["tasks"]] == ["imagenet"]
    status, body, _ = b.call("GET", "/static/app.js")
    assert status == 200


def test_every_change_needs_the_csrf_token(server):
    create_and_label(server, per_class=3)
    b = Browser(server.server.terminal.url)
    b.session()
    status, body, _ = b.call("POST", "/api/tasks/parts/classes", {"class_name": "crack"}, csrf=False)
    assert status == 403 and body["code"] == "csrf" and "reload" in body["error"]
    status, body, _ = b.call("POST", "/api/tasks/parts/classes", {"class_name": "crack"}, headers={"X-CSRF-Token": "forged"}, csrf=False)
    assert status == 403
    status, body, _ = b.call("POST", "/api/tasks/parts/classes", {"class_name": "crack"})
    assert status == 200 and body["class_names"] == ["ok", "pit", "burn", "crack"]
    other = Browser(server.server.terminal.url)  # no session at all
    status, body, _ = other.call("POST", "/api/review/resolve", {"item_ids": [1], "action": "accept"}, headers={"X-CSRF-Token": b.csrf}, csrf=False)
    assert status == 401 and body["code"] == "signed_out"


@pytest.fixture
def secured(data_dir):
    server = ServerThread(make_settings(data_dir, tokens=TOKENS, terminal_session_idle_s=1.5))
    yield server
    server.stop()


def test_sign_in_with_a_token_and_roles_name_the_person(secured, data_dir):
    b = Browser(secured.server.terminal.url)
    session, _ = b.session()
    assert session["signed_in"] is False and session["security"] is True
    status, body, _ = b.call("GET", "/api/tasks")
    assert status == 401 and body["code"] == "signed_out"
    status, body, _ = b.call("POST", "/api/session", {"token": "wrong"})
    assert status == 401 and "not known to the server" in body["error"]
    status, body, _ = b.call("POST", "/api/session", {"token": "camera-token"})
    assert status == 403 and "for operators and admins" in body["error"]
    before = {c.value for c in b.jar}
    status, body, _ = b.call("POST", "/api/session", {"token": "op-token"})
    assert status == 200 and (body["name"], body["role"]) == ("anna", "operator")
    assert {c.value for c in b.jar}.isdisjoint(before)  # a new session id on sign-in
    b.csrf = body["csrf"]
    status, tasks, _ = b.call("GET", "/api/tasks")
    assert status == 200
    # An operator may not train: the server's own refusal, naming the person and the role needed.
    status, body, _ = b.call("POST", "/api/tasks/imagenet/train", {"method": "head"})
    assert status == 403 and body["error"].startswith("Not permitted: anna has role 'operator'; StartTraining needs 'admin'")
    audit = [json.loads(line) for line in (data_dir / "audit.jsonl").read_text().splitlines()]
    assert {"who": "anna", "action": "StartTraining", "outcome": "PERMISSION_DENIED"}.items() <= audit[-1].items()
    status, _, _ = b.call("DELETE", "/api/session")
    assert status == 200
    status, body, _ = b.call("GET", "/api/tasks")
    assert status == 401


def test_an_unused_session_expires_with_a_clear_message(secured):
    b = Browser(secured.server.terminal.url)
    b.session()
    status, body, _ = b.call("POST", "/api/session", {"token": "op-token"})
    b.csrf = body["csrf"]
    assert b.call("GET", "/api/tasks")[0] == 200
    time.sleep(2.0)
    status, body, _ = b.call("GET", "/api/tasks")
    assert status == 401 and body["code"] == "session_expired" and "without use; sign in again" in body["error"]
    session, _ = b.session()
    assert session["signed_in"] is False


def test_uploads_label_images_and_refuse_what_is_not_one(server, chelsea_rgb):
    create_and_label(server, per_class=2)
    b = Browser(server.server.terminal.url)
    b.session()
    status, body, _ = b.upload("parts", "pit", "cat.png", png(chelsea_rgb[:, :, ::-1]))
    assert status == 200 and body["file"] == "cat.png" and body["counts"]["per_class"]["pit"] == "3"
    status, body, _ = b.upload("parts", "pit", "notes.txt", b"this is not an image")
    assert status == 400 and body["error"].startswith("notes.txt: ") and "JPEG, PNG or BMP" in body["error"]
    status, body, _ = b.upload("parts", "scratch", "cat2.png", png(chelsea_rgb[:100, :100, ::-1]))
    assert status == 400 and "has no class 'scratch'" in body["error"]
    status, body, _ = b.call("POST", "/api/tasks/parts/labels", {"class_name": "pit"})
    assert status == 400 and "multipart" in body["error"]
    status, body, _ = b.call("GET", "/api/review/items?task=parts&min_score=abc")
    assert status == 400 and "min_score must be a number" in body["error"]
    status, body, _ = b.call("GET", "/api/review/items?task=nope")
    assert status == 404 and "unknown task 'nope'" in body["error"]
    assert b.call("GET", "/api/tasks")[0] == 200  # and the terminal goes on


def test_an_oversized_upload_is_refused(data_dir):
    server = ServerThread(make_settings(data_dir, max_message_bytes=200_000))
    try:
        create_and_label(server, per_class=2)
        b = Browser(server.server.terminal.url)
        b.session()
        status, body, _ = b.upload("parts", "pit", "huge.png", b"\x89PNG" + b"0" * 300_000)
        assert status == 413 and "huge.png is over" in body["error"]
    finally:
        server.stop()


def test_training_progress_streams_as_server_sent_events(server):
    create_and_label(server)
    b = Browser(server.server.terminal.url)
    b.session()
    status, job, _ = b.call("POST", "/api/tasks/parts/train", {"method": "head", "options": {"epochs": 100}})
    assert status == 200 and job["state"] in ("queued", "running")
    request = urllib.request.Request(f"{b.url}/api/jobs/{job['id']}/events")
    events, kinds = [], []
    with b.opener.open(request, timeout=120) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        kind = "message"
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                kinds.append(kind)
                events.append(json.loads(line[6:]))
                kind = "message"
            if kinds and kinds[-1] == "end":
                break
    phases = [e.get("phase") for e in events if e]
    assert kinds[-1] == "end" and "train" in phases and phases[-1] == "done"
    final = [e for e in events if e and "job" in e][-1]["job"]
    assert final["state"] == "succeeded" and final["activated"] and "first adapter" in final["gate"]


def test_a_server_that_cannot_be_reached_is_said_so(tmp_path):
    from edgetl.terminal.app import Terminal, TerminalConfig
    from edgetl.terminal.client import ChannelSpec

    async def run():
        terminal = Terminal(ChannelSpec("127.0.0.1:1"), TerminalConfig("127.0.0.1", 0))
        url = await terminal.start()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, lambda: Browser(url).call("GET", "/api/session"))
        finally:
            await terminal.stop()

    status, body, _ = asyncio.run(run())
    assert status == 503 and "cannot be reached" in body["error"] and "127.0.0.1:1" in body["error"]


def test_plain_http_off_loopback_is_refused():
    from edgetl.errors import ConfigError
    from edgetl.terminal.app import _check_bind

    with pytest.raises(ConfigError, match="clear text"):
        _check_bind("0.0.0.0", https=False, insecure=False)
    _check_bind("0.0.0.0", https=True, insecure=False)
    _check_bind("127.0.0.1", https=False, insecure=False)


def test_the_review_api_round_trip(server):
    from edgetl.api.v1 import review_pb2, review_pb2_grpc

    images = create_and_label(server)
    train(server)
    review_pb2_grpc.ReviewServiceStub(server.channel).SetCapturePolicy(review_pb2.SetCapturePolicyRequest(task="parts", random_rate=1.0), timeout=10)
    from tests.server.test_review import _classify

    for _, img in images[:3]:
        _classify(server, img)
    assert server.server.capture.flush()
    b = Browser(server.server.terminal.url)
    b.session()
    status, page, _ = b.call("GET", "/api/review/items?task=parts&order=time")
    assert status == 200 and page["total"] == "3"
    first = page["items"][0]
    status, image, headers = b.call("GET", f"/api/review/items/{first['id']}/image")
    assert status == 200 and headers["Content-Type"] == "image/png" and image == png(images[0][1])
    status, thumb, headers = b.call("GET", f"/api/review/items/{first['id']}/image?size=32")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and thumb[:2] == b"\xff\xd8"
    status, body, _ = b.call("GET", f"/api/review/items/{first['id']}/heatmap")  # a classify task has no anomaly map
    assert status == 400 and "only anomaly tasks have an anomaly map" in body["error"]
    status, body, _ = b.call("POST", "/api/tasks/parts/threshold", {"false_alarm_rate": "lots"})
    assert status == 400 and "false_alarm_rate must be a number" in body["error"]
    status, body, _ = b.call("POST", "/api/tasks/parts/threshold", {"false_alarm_rate": 0.02})  # a classify task
    assert status == 400 and "a threshold is set on anomaly tasks" in body["error"]
    status, result, _ = b.call("POST", "/api/review/resolve", {"item_ids": [first["id"]], "action": "accept"})
    assert status == 200 and result["results"][0]["state"] == "accepted"
    status, live, _ = b.call("GET", "/api/tasks/parts/live-accuracy")
    assert status == 200 and live["versions"][0]["reviewed"] == "1"
    status, overview, _ = b.call("GET", "/api/overview")
    assert status == 200 and overview["review"]["parts"]["pending"] == "2" and "parts" in overview["live_accuracy"]
    status, body, _ = b.call("POST", "/api/review/resolve", {"item_ids": [first["id"]], "action": "maybe"})
    assert status == 400 and "accept, relabel, reject or skip" in body["error"]


def test_cancel_a_job_and_activate_a_version_through_the_terminal(server):
    from tests.conftest import TINY

    create_and_label(server)
    train(server)
    train(server, seed=1, force=True)
    b = Browser(server.server.terminal.url)
    b.session()
    status, listed, _ = b.call("GET", "/api/tasks/parts/adapters")
    assert status == 200 and listed["active_version"] == "2"
    status, activated, _ = b.call("POST", "/api/tasks/parts/adapters/1/activate")
    assert status == 200 and activated["version"] == "1" and activated["state"] == "active"
    status, body, _ = b.call("POST", "/api/tasks/parts/adapters/9/activate")
    assert status == 404 and "no adapter version 9" in body["error"]

    create_and_label(server, task="slow", backbone=TINY, size=64, per_class=6)
    status, job, _ = b.call("POST", "/api/tasks/slow/train", {"method": "lora", "options": {"epochs": 500, "batch_size": 4}})
    assert status == 200
    status, cancelled, _ = b.call("POST", f"/api/jobs/{job['id']}/cancel")
    assert status == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = b.call("GET", "/api/jobs?task=slow")[1]["jobs"]
        if jobs[-1]["state"] == "cancelled":
            break
        time.sleep(0.5)
    assert jobs[-1]["state"] == "cancelled"
    status, body, _ = b.call("POST", "/api/tasks/slow/train", {"method": "head", "options": {"bogus": 1}})
    assert status == 400 and "unknown training option 'bogus'" in body["error"]
    status, body, _ = b.call("POST", "/api/tasks/slow/train", {"method": "head", "options": {"precision": "fp16"}})
    assert status == 400 and "precision must be one of fp32, int8" in body["error"]
    status, body, _ = b.call("POST", "/api/tasks/slow/train", {"method": "head", "options": {"serve_views": 3}})
    assert status == 400 and "serve_views must be one of 1, 2, 4, 8, got 3" in body["error"]
