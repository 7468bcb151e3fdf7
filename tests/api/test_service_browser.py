"""The saliency viewer in a real browser: Debian's headless Chromium renders the page from a live service.

`chromium --headless --dump-dom URL` prints the DOM after rendering; the test finds the rationale words
marked in it, and `--screenshot` captures the page (SALIENT_UPDATE_DOCS_IMG=1 writes it to
docs/img/rationale-view.png, the picture in docs/service.md). The service runs with
--insecure-no-auth on 127.0.0.1 (Chromium cannot send a bearer header from the command line).
Chromium missing is a failure, not a skip: this is the check that the page works in a browser.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from service_server import REPO, ServiceProcess, build_teacher, follow_events, toy_rows, write_jsonl


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("headless Chromium is missing: `apt-get install chromium` (Debian's package) to run the viewer test")
    return path


def run_chromium(profile: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """One headless Chromium run; its profile goes under the test's temp root, which pytest prunes."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def viewed(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    teacher = build_teacher(root / "t5")
    rows = toy_rows(20, seed=4)
    with ServiceProcess(root / "store", insecure=True) as server, server.client() as c:
        path = write_jsonl(root / "toy.jsonl", rows)
        with path.open("rb") as fh:
            assert c.post("/v1/datasets", data={"name": "toy", "split": "test"},
                          files={"file": (path.name, fh)}).status_code == 201
        job = c.post("/v1/jobs", json={"dataset": "toy", "teacher": teacher, "k": 3, "max_new_tokens": 3,
                                       "shard_size": 10, "actors": 1}).json()
        assert follow_events(c, job["job_id"])[-1]["status"] == "succeeded"
        example = rows[3]["id"]
        rationale = c.get(f"/v1/rationales/toy/{example}").json()["rationale"]
        yield server, example, rationale, job["job_id"], root


def test_headless_chromium_renders_the_rationale_marks(viewed):
    server, example, rationale, job_id, root = viewed
    url = f"{server.url}/v1/rationales/toy/{example}/view"
    profile = root / "chromium"
    dom = run_chromium(profile, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    marked = re.findall(r'<mark class="rationale"><span[^>]*>([^<]*)</span></mark>', dom.stdout)
    assert marked == rationale, (marked, rationale)

    shot = root / "rationale-view.png"
    res = run_chromium(profile, f"--screenshot={shot}", "--window-size=1100,700", "--hide-scrollbars", url)
    assert res.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", res.stderr[-2000:]
    job_shot = root / "job-view.png"
    res = run_chromium(profile, f"--screenshot={job_shot}", "--window-size=1100,1400", "--hide-scrollbars",
                       f"{server.url}/v1/jobs/{job_id}/view")
    assert res.returncode == 0 and job_shot.stat().st_size > 1000
    if os.environ.get("SALIENT_UPDATE_DOCS_IMG") == "1":
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, REPO / "docs" / "img" / "rationale-view.png")
        shutil.copy(job_shot, REPO / "docs" / "img" / "job-view.png")
