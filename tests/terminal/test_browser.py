"""The operator terminal in a real browser (Chromium, driven by Playwright) against a real server.

Debian's `chromium` package is the browser (Playwright's own download needs
a network this project does not have). Without it these tests skip, unless
EDGETL_REQUIRE_BROWSER=1, which .ci/run sets: in CI they never skip.
Screenshots go to $EDGETL_SCREENSHOTS (the README's come from
`EDGETL_SCREENSHOTS=docs/screenshots pytest tests/terminal/test_browser.py`),
or to a temporary directory whose path is printed.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest

from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, model_pb2, model_pb2_grpc, review_pb2, review_pb2_grpc
from edgetl.server.security import hash_token
from edgetl.synthetic import make_images
from tests.adapt_helpers import create_and_label, png, train
from tests.conftest import ServerThread, make_settings
from tests.server.test_review import _classify

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google, which this network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]
CLASSES = ("ok", "pit", "burn")


def _browser_or_skip():
    reason = None
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
    if reason is None and not CHROMIUM.exists():
        reason = "Debian's chromium is not installed (apt-get install chromium)"
    if reason:
        if os.environ.get("EDGETL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are required here (EDGETL_REQUIRE_BROWSER=1) but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    directory = Path(os.environ.get("EDGETL_SCREENSHOTS") or tempfile.mkdtemp(prefix="edgetl-screenshots-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots in {directory}")
    return directory


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(30_000)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _review_stub(server):
    return review_pb2_grpc.ReviewServiceStub(server.channel)


def _item(server, item_id: int):
    return _review_stub(server).GetReviewItem(review_pb2.GetReviewItemRequest(id=item_id), timeout=10)


def _shown_item(page) -> int:
    return int(page.get_attribute("#review-image", "alt").rsplit(" ", 1)[1])


def _next_item(page, previous: int) -> int:
    page.wait_for_function(f"() => document.querySelector('#review-image') && document.querySelector('#review-image').alt !== 'review item {previous}'")
    return _shown_item(page)


@pytest.fixture
def line(server):
    """A line: task `parts` with an active head, and camera traffic that filled the review queue."""
    create_and_label(server, per_class=12, size=160)
    _, job = train(server)
    assert job.activated
    _review_stub(server).SetCapturePolicy(review_pb2.SetCapturePolicyRequest(task="parts", random_rate=1.0), timeout=10)
    for i, (_, img) in enumerate(make_images("brick", CLASSES, 8, 160, 7)):
        _classify(server, img, flag=(i % 5 == 0))
    assert server.server.capture.flush()
    return server


def test_an_operators_day_review_label_train_watch_roll_back(line, page, shots, tmp_path):
    server, url = line, line.server.terminal.url
    page.goto(url)
    page.wait_for_selector(".task-card[data-task=parts]")
    # A new adapter learns the line's class mix and confidence from its first images.
    assert "ok · as trained" in page.text_content(".task-card[data-task=parts] .chip.drift")
    assert "learning the line: 476 images to go" in page.text_content(".task-card[data-task=parts] .drift-detail")
    page.screenshot(path=str(shots / "overview.png"))

    # -- the review queue, with the keyboard ---------------------------------------------------
    page.goto(url + "#/review")
    page.wait_for_selector("#review-image")
    assert page.text_content("#queue-count").endswith("of 24 pending")
    page.screenshot(path=str(shots / "review.png"))

    accepted = _shown_item(page)
    page.keyboard.press("Enter")
    relabelled = _next_item(page, accepted)
    predicted = page.text_content("#predicted")
    target = next(i for i, c in enumerate(CLASSES) if c != predicted)
    page.keyboard.press(str(target + 1))
    rejected = _next_item(page, relabelled)
    page.keyboard.press("x")
    skipped = _next_item(page, rejected)
    page.keyboard.press("s")
    here = _next_item(page, skipped)
    page.keyboard.press("ArrowRight")
    assert _next_item(page, here) != here
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => document.querySelector('#review-image').alt === 'review item {here}'")
    page.keyboard.press("+")  # zoom in, and back
    page.keyboard.press("0")

    assert _item(server, accepted).state == "accepted" and _item(server, accepted).label_id
    got = _item(server, relabelled)
    assert (got.state, got.resolved_class, got.resolved_by) == ("relabelled", CLASSES[target], "local")
    assert _item(server, rejected).state == "rejected" and _item(server, skipped).state == "skipped"
    assert page.text_content("#queue-count").endswith("of 20 pending")

    # -- the grid: select a range, give it one class ---------------------------------------------
    page.keyboard.press("g")
    page.wait_for_selector("#grid .tile")
    tiles = page.locator("#grid .tile")
    ids = [int(tiles.nth(i).get_attribute("data-id")) for i in range(3)]
    tiles.nth(0).click()
    tiles.nth(2).click(modifiers=["Shift"])
    assert page.text_content("#selection-count") == "3 selected"
    page.screenshot(path=str(shots / "review-grid.png"))
    page.keyboard.press("3")
    page.wait_for_function(f"() => !document.querySelector('#grid .tile[data-id=\"{ids[0]}\"]')")
    for item_id in ids:
        got = _item(server, item_id)
        assert got.state in ("accepted", "relabelled") and got.resolved_class == "burn"

    # -- the capture policy, changed by an admin at the terminal ---------------------------------------
    page.click("#capture-policy summary")
    page.wait_for_selector("#capture-policy input[name=random_rate]")
    page.fill("#capture-policy input[name=random_rate]", "0.02")
    with page.expect_response(lambda r: r.url.endswith("/capture-policy") and r.request.method == "PUT") as saved:
        page.click("#capture-policy button[type=submit]")
    assert saved.value.ok
    policy = _review_stub(server).GetCapturePolicy(review_pb2.GetCapturePolicyRequest(task="parts"), timeout=10)
    assert policy.random_rate == pytest.approx(0.02) and policy.customized

    # -- a new defect type: add the class, drop its images (and a file that is not an image) ----
    page.goto(url + "#/label")
    page.fill("#new-class", "crack")
    page.click("#add-class button[type=submit]")
    page.wait_for_selector(".class-button[data-class=crack].chosen")
    crack_dir = tmp_path / "crack"
    crack_dir.mkdir()
    crack_files = []
    for i, (_, img) in enumerate(make_images("brick", ("crack",), 16, 160, 99)):
        path = crack_dir / f"crack-{i:02d}.png"
        path.write_bytes(png(img))
        crack_files.append(str(path))
    page.set_input_files("#file-input", crack_files)
    page.wait_for_function("() => document.querySelector('#upload-progress').textContent.startsWith('16 of 16 done')")
    # A file dropped on the drop zone that is not an image: the person reads which file and why.
    page.evaluate("""() => {
        const dt = new DataTransfer();
        dt.items.add(new File(["shift notes"], "notes.txt", { type: "text/plain" }));
        document.querySelector('#dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true }));
    }""")
    page.wait_for_selector("#uploads li.failed")
    failure = page.text_content("#uploads li.failed")
    assert "notes.txt" in failure and "JPEG, PNG or BMP" in failure
    assert "1 of 1 file(s) were not labelled" in page.text_content("#banner-text")
    page.screenshot(path=str(shots / "label.png"), full_page=True)

    # -- train, watching the progress to the end -------------------------------------------------
    page.goto(url + "#/train")
    page.wait_for_selector("#train-counts table")
    assert "crack" in page.text_content("#train-counts")
    page.evaluate("""() => {
        window.seenPhases = [];
        new MutationObserver(() => {
            const phase = document.querySelector('#job-phase');
            if (phase && window.seenPhases.at(-1) !== phase.textContent) window.seenPhases.push(phase.textContent);
        }).observe(document.querySelector('#page'), { childList: true, subtree: true, characterData: true });
    }""")
    assert page.get_attribute(".method[data-method=auto]", "aria-pressed") == "true"  # auto is the default
    page.click(".method[data-method=head]")  # seconds, for the test
    page.click("#page details summary")  # the options, open in the screenshot
    assert page.input_value("#precision") == ""  # the server's default unless the operator picks one
    assert page.eval_on_selector_all("#precision option", "els => els.map(e => e.value)") == ["", "fp32", "int8"]
    assert page.input_value("#serve-views") == "" and page.eval_on_selector_all("#serve-views option", "els => els.map(e => e.value)") == ["", "4", "8"]
    with page.expect_request(lambda r: r.url.endswith("/train") and r.method == "POST") as started:
        page.click("#start-training")
    assert "precision" not in started.value.post_data_json["options"] and "serve_views" not in started.value.post_data_json["options"]
    page.wait_for_selector("#job-progress:not([hidden])")
    page.wait_for_selector("#gate", timeout=180_000)
    phases = page.evaluate("window.seenPhases")
    assert "train" in phases and phases[-1] == "done", phases
    gate = page.text_content("#gate")
    assert gate.startswith("activated") and "'crack'" in gate, gate
    assert page.text_content("#new-accuracy").endswith("%")
    page.screenshot(path=str(shots / "train.png"), full_page=True)
    new_version = model_pb2_grpc.ModelServiceStub(server.channel).GetTask(model_pb2.GetTaskRequest(name="parts"), timeout=10).active_adapter_version
    assert new_version == "2"

    # -- versions: live accuracy from the reviews, then roll back with a confirmation -----------
    page.goto(url + "#/versions")
    page.wait_for_selector("table.versions tr[data-version='1'] td.live")
    live = page.text_content("table.versions tr[data-version='1'] td.live")
    assert "n = " in live and "%" in live  # the items reviewed above were random samples of v1
    page.click("table.versions tr[data-version='1']")
    page.wait_for_selector("svg.confusion")
    page.screenshot(path=str(shots / "versions.png"))
    page.click("#rollback")
    assert "Roll back parts from v2" in page.text_content("#confirm-text")
    page.click("#confirm-ok")
    page.wait_for_function("() => document.querySelector('#banner-text').textContent.includes('now serves v1')")
    assert model_pb2_grpc.ModelServiceStub(server.channel).GetTask(model_pb2.GetTaskRequest(name="parts"), timeout=10).active_adapter_version == "1"
    page.wait_for_selector("table.versions tr.active[data-version='1']")


TOKENS = {hash_token("op-token"): {"name": "anna", "role": "operator"}, hash_token("admin-token"): {"name": "ben", "role": "admin"}}
ADMIN = (("authorization", "Bearer admin-token"),)


def test_sign_in_refusals_and_an_expired_session(data_dir, page, shots):
    server = ServerThread(make_settings(data_dir, tokens=TOKENS, terminal_session_idle_s=3.0))
    try:
        model_pb2_grpc.ModelServiceStub(server.channel).CreateTask(model_pb2.CreateTaskRequest(name="parts", class_names=list(CLASSES)), metadata=ADMIN, timeout=300)
        labels = adapt_pb2_grpc.LabelServiceStub(server.channel)
        for kind, img in make_images("brick", CLASSES, 3, 96, 0):
            labels.AddLabel(adapt_pb2.AddLabelRequest(task="parts", image=image_pb2.Image(encoded=png(img)), class_name=kind), metadata=ADMIN, timeout=30)
        url = server.server.terminal.url
        page.goto(url)
        page.wait_for_selector("#sign-in")
        page.fill("#token", "not-a-token")
        page.click("#sign-in button[type=submit]")
        page.wait_for_function("() => document.querySelector('#sign-in-error').textContent.includes('not known')")
        page.screenshot(path=str(shots / "sign-in.png"))
        page.fill("#token", "op-token")
        page.click("#sign-in button[type=submit]")
        page.wait_for_selector("#nav:not([hidden])")
        assert page.text_content("#user") == "anna · operator"
        cookie = next(c for c in page.context.cookies() if c["name"] == "edgetl_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # the page's script cannot read the session

        # An operator may not train: the server's refusal, in words.
        page.goto(url + "#/train")
        page.click("#start-training")
        page.wait_for_selector("#banner.error:not([hidden])")
        assert "Not permitted: anna has role 'operator'; StartTraining needs 'admin'" in page.text_content("#banner-text")

        time.sleep(3.5)  # unused for longer than the session lasts
        page.click("#nav a[data-page=review]")
        page.wait_for_selector("#sign-in")
        page.wait_for_function("() => document.querySelector('#sign-in-error').textContent.includes('without use')")
        page.screenshot(path=str(shots / "session-expired.png"))
    finally:
        server.stop()


def test_a_server_that_is_down_is_said_so(page):
    from edgetl.terminal.app import Terminal, TerminalConfig
    from edgetl.terminal.client import ChannelSpec

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    terminal = Terminal(ChannelSpec("127.0.0.1:1"), TerminalConfig("127.0.0.1", 0))
    url = asyncio.run_coroutine_threadsafe(terminal.start(), loop).result(30)
    try:
        page.goto(url)
        page.wait_for_selector("#banner.error:not([hidden])")
        assert "cannot be reached" in page.text_content("#banner-text") and "Waiting for the server" in page.text_content("#page")
    finally:
        asyncio.run_coroutine_threadsafe(terminal.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)


def test_a_line_that_changed_shows_on_the_overview(server_factory, page, shots):
    """Another material on the line: the task's card turns red and says what changed and what to do."""
    from tests.server.test_drift import DRIFT, _stream

    server = server_factory(**DRIFT)
    create_and_label(server)
    _, job = train(server)
    assert job.activated
    _stream(server, "brick", 150, seed=5)
    _stream(server, "grass", 150, seed=6)
    page.goto(server.server.terminal.url)
    page.wait_for_selector(".task-card.drift-drifted[data-task=parts]")
    chip = page.text_content(".task-card[data-task=parts] .chip.drift")
    detail = page.text_content(".task-card[data-task=parts] .drift-detail")
    assert chip == "drifted · has changed"
    # Which test crosses first depends on the head (tests/server/test_drift.py); each says what it saw in words.
    assert ("the images look different from what this version first saw (features z =" in detail
            or "the answers grew unsure (confidence z =" in detail)
    assert "review the drifted images, then retrain" in detail
    page.screenshot(path=str(shots / "drift.png"))


def test_an_operator_teaches_an_anomaly_task_a_good_part_from_the_review_queue(server, page, shots):
    """An anomaly task's queue: E on a part the operator knows is good adds it to the bank at once,
    as a new adapter version, and resolves the item as labelled `good`."""
    from tests.conftest import TINY

    models = model_pb2_grpc.ModelServiceStub(server.channel)
    models.CreateTask(model_pb2.CreateTaskRequest(name="surface", kind="anomaly", backbone=TINY), timeout=300)
    labels = adapt_pb2_grpc.LabelServiceStub(server.channel)
    for _, img in make_images("brick", ("ok",), 16, 96, 0):
        labels.AddLabel(adapt_pb2.AddLabelRequest(task="surface", image=image_pb2.Image(encoded=png(img)), class_name="good"), timeout=30)
    _, job = train(server, task="surface", method="anomaly")
    assert job.activated, job.gate
    _review_stub(server).SetCapturePolicy(review_pb2.SetCapturePolicyRequest(task="surface", random_rate=1.0), timeout=10)
    for _, img in make_images("brick", ("ok",), 4, 96, 9):
        _classify(server, img, task="surface")
    assert server.server.capture.flush()

    page.goto(server.server.terminal.url + "#/review")
    page.wait_for_selector("#review-image")
    assert page.text_content("#queue-count").endswith("of 4 pending")
    assert "learn it now" in page.text_content("#enrol")
    first = _shown_item(page)
    # The map over the part comes first: the version serving now scored the stored image again.
    page.wait_for_function("() => document.querySelector('#heatmap-caption').textContent.startsWith('Red: unlike the good parts')")
    assert "adapter v1" in page.text_content("#heatmap-caption")
    assert page.get_attribute("#review-image", "src").startswith("blob:")
    assert page.evaluate("() => document.querySelector('#review-image').naturalWidth") == 96  # the overlay, at the image's size
    page.screenshot(path=str(shots / "review-anomaly-map.png"))
    page.keyboard.press("h")  # the image alone
    page.wait_for_function("() => !document.querySelector('#review-image').src.startsWith('blob:')")
    assert page.get_attribute("#review-image", "src").endswith(f"/api/review/items/{first}/image")
    assert page.text_content("#heatmap-caption") == "" and "where it differs" in page.text_content("#heatmap-toggle")
    page.keyboard.press("h")  # and back
    page.wait_for_function("() => document.querySelector('#review-image').src.startsWith('blob:')")
    page.keyboard.press("e")
    page.wait_for_function("() => (document.querySelector('#last-action') || {}).textContent?.includes('added to the good parts')")
    last = page.text_content("#last-action")
    assert f"#{first} added to the good parts: v2 serving, threshold" in last, last
    got = _item(server, first)
    # Labelled good: "accepted" when the server had called it good, "relabelled" when it had not.
    assert (got.state, got.resolved_class) == ("accepted" if got.predicted == "good" else "relabelled", "good") and got.label_id
    active = adapt_pb2_grpc.AdapterServiceStub(server.channel).ListAdapters(adapt_pb2.ListAdaptersRequest(task="surface"), timeout=10)
    assert [a.version for a in active.adapters if a.state == "active"] == ["2"]
    assert page.text_content("#queue-count").endswith("of 3 pending")
    page.screenshot(path=str(shots / "review-anomaly.png"))

    # Too many false alarms: the operator lets about 5 % of good parts be flagged instead, as version 3.
    page.click("#sensitivity summary")
    page.wait_for_selector("#sensitivity-now")
    assert "Version 2: threshold" in page.text_content("#sensitivity-now")
    page.fill("#sensitivity-form input[name=false_alarm_percent]", "5")
    page.click("#sensitivity-form button[type=submit]")
    page.wait_for_selector("#sensitivity-result")
    assert "v3 serving: threshold" in page.text_content("#sensitivity-result")
    assert "about 5.0 %" in page.text_content("#sensitivity-now")
    active = adapt_pb2_grpc.AdapterServiceStub(server.channel).ListAdapters(adapt_pb2.ListAdaptersRequest(task="surface"), timeout=10)
    assert [a.version for a in active.adapters if a.state == "active"] == ["3"]
    page.screenshot(path=str(shots / "review-sensitivity.png"), full_page=True)
