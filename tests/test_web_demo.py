"""`videoglamm serve` end to end in a real headless Chromium (the system package) driven by Playwright.

The server runs as the CLI in a subprocess on a free loopback port. The page's answer, overlay video
and downloads are checked against a direct `predict()` in this process (its own model load), with
the web demo's options. Set VIDEOGLAMM_WEB_SCREENSHOT=path to keep the screenshot (docs/serve.png).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# .ci/run sets VIDEOGLAMM_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip.
REQUIRED = os.environ.get("VIDEOGLAMM_REQUIRE_BROWSER") == "1"


def _need(ok: bool, reason: str) -> None:
    if not ok:
        if REQUIRED:
            pytest.fail(reason + " (VIDEOGLAMM_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(reason, allow_module_level=True)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


pytestmark = pytest.mark.browser
_need(Path(CHROMIUM).is_file(), "no Chromium: apt-get install -y chromium (.ci/run does)")
_need(_importable("playwright"), "no Playwright: pip install -e '.[dev]'")
_need(_importable("gradio"), "no Gradio: pip install -e '.[demo]'")
from playwright import sync_api as playwright  # noqa: E402  (after the checks above)

REPO = Path(__file__).resolve().parent.parent
QUESTION = "What is the yellow circle in this video? Please respond with segmentation masks."
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S, RUN_TIMEOUT_MS = 120, 90_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "videoglamm", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--workdir", str(tmp_path_factory.mktemp("work"))],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"the server exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the server did not answer in {START_TIMEOUT_S} s:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    # A fresh context per test is a fresh profile: another user, with no shared cookies or storage.
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(RUN_TIMEOUT_MS)
    page.outside = []  # requests that left this machine (there must be none)
    page.on("request", lambda r: r.url.startswith((server, "data:", "blob:")) or page.outside.append(r.url))
    page.goto(server)
    page.wait_for_selector("#vg-run")
    yield page
    context.close()


@pytest.fixture(scope="module")
def synthetic_video(tmp_path_factory):
    from videoglamm.data.synthetic import generate_video
    from videoglamm.visualize import write_video

    path = tmp_path_factory.mktemp("upload") / "shapes.mp4"
    write_video(path, generate_video(2026, 0, num_frames=24).frames)
    return path


def _ask(page, video, question):
    page.locator("#vg-video input[type=file]").set_input_files(str(video))
    # Uploaded when the file links to its copy on the server.
    page.wait_for_selector(f"#vg-video a[data-testid=download-link][href$='/{video.name}']")
    page.locator("#vg-prompt textarea").fill(question)
    page.locator("#vg-run").click()


def _download(page, button, folder):
    with page.expect_download() as info:
        page.locator(button).click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def test_upload_ask_watch_and_download(page, browser, server, synthetic_video, tmp_path):
    import av
    from pycocotools import mask as mask_utils
    from PIL import Image

    from videoglamm.modeling.videoglamm import VideoGLaMM

    start = time.monotonic()
    _ask(page, synthetic_video, QUESTION)
    # Another user asks about another shape at the same time: the two pages must not mix.
    other = browser.new_context()
    other_page = other.new_page()
    other_page.set_default_timeout(RUN_TIMEOUT_MS)
    other_page.goto(server)
    _ask(other_page, synthetic_video, QUESTION.replace("yellow circle", "red triangle"))
    for p in (page, other_page):  # finished, or failed with a message that says why
        p.wait_for_selector("#vg-status .vg-status:text('done'), #vg-status .vg-error")
        assert p.locator("#vg-status .vg-error").count() == 0, p.locator("#vg-status").text_content()
    elapsed = time.monotonic() - start

    direct = VideoGLaMM.from_pretrained("videoglamm-tiny-synthetic").eval()
    expected = direct.predict(str(synthetic_video), QUESTION)
    expected_other = direct.predict(str(synthetic_video), QUESTION.replace("yellow circle", "red triangle"))
    assert page.locator("#vg-answer .vg-raw").text_content() == expected.text
    assert other_page.locator("#vg-answer .vg-raw").text_content() == expected_other.text != expected.text
    other.close()
    marks = page.locator("#vg-answer mark")
    assert marks.all_text_contents() == expected.phrases == ["the yellow circle"]
    assert marks.first.evaluate("m => getComputedStyle(m).backgroundColor") == "rgb(230, 25, 75)"  # PALETTE[0]

    # The overlay video plays: not paused, and its clock moves. (Queried afresh each time: the page may
    # re-render the element, and a detached video is paused.)
    video = "document.querySelector('#vg-overlay video')"
    page.wait_for_function(f"() => {{ const v = {video}; return v && v.readyState >= 2 && v.videoWidth === 128; }}")
    page.evaluate(f"() => {video}.play()")  # resolves once playing (rejects if the browser refuses)
    before = page.evaluate(f"() => {video}.currentTime")
    page.wait_for_function(f"t => {{ const v = {video}; return v && !v.paused && v.currentTime !== t; }}", arg=before)

    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("VIDEOGLAMM_WEB_SCREENSHOT"):
        shutil.copy(shot, os.environ["VIDEOGLAMM_WEB_SCREENSHOT"])

    result = json.loads(_download(page, "#vg-result-json", tmp_path).read_text())
    assert result["text"] == expected.text and len(result["objects"]) == len(expected.masks) == 1
    for obj, masks in zip(result["objects"], expected.masks):
        decoded = np.stack([mask_utils.decode({"size": m["size"], "counts": m["counts"].encode()}) for m in obj["masks"]])
        np.testing.assert_array_equal(decoded.astype(bool), masks.numpy())
    with zipfile.ZipFile(_download(page, "#vg-masks-zip", tmp_path)) as archive:
        assert len(archive.namelist()) == 24
        with archive.open("0/00012.png") as f:
            np.testing.assert_array_equal(np.asarray(Image.open(f)) > 0, expected.masks[0][12].numpy())
    with av.open(str(_download(page, "#vg-overlay-mp4", tmp_path))) as container:
        assert sum(1 for _ in container.decode(video=0)) == 24
    assert page.outside == []
    print(f"two users' requests answered in the browser in {elapsed:.1f} s")


def test_invalid_upload_shows_the_error(page, tmp_path):
    from videoglamm.errors import VideoReadError
    from videoglamm.processing.video_io import VideoFile

    bad = tmp_path / "bad.mp4"
    bad.write_text("this is a text file, not a video\n")
    with pytest.raises(VideoReadError) as err:
        VideoFile(bad)  # what `videoglamm predict` reports for this file
    _ask(page, bad, QUESTION)
    box = page.locator("#vg-status .vg-error")
    box.wait_for()
    assert box.text_content() == "Error: " + str(err.value).replace(str(bad), "bad.mp4")
    assert page.locator("#vg-answer .vg-raw").count() == 0
    page.screenshot(path=str(tmp_path / "error.png"), full_page=True)
    assert page.outside == []
