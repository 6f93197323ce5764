"""What a labeler sees: chromium, driven by Playwright, logs in to the launcher's Label Studio and opens a task of
round 2 of a live campaign with pre-annotations. The image has loaded and the previous round's prediction is
the checked choice. The screenshot stays with the test (BPSRUN_UPDATE_DOCS=1 refreshes docs/labelstudio-task.png).

Needs chromium (`BPSRUN_CHROMIUM`, default /usr/bin/chromium: `apt-get install -y chromium`) and Playwright's
Python package in its own environment (`BPSRUN_PLAYWRIGHT_VENV`, default /tmp/pw-ls, created with
`pip install playwright` when missing; Playwright's own browser downloads are never used). Without them the
test fails and says what to install.
"""

import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, run_command

pytestmark = pytest.mark.slow  # a real server, a browser, the command

PLAYWRIGHT_VENV = Path(os.environ.get("BPSRUN_PLAYWRIGHT_VENV", "/tmp/pw-ls"))
CHROMIUM = Path(os.environ.get("BPSRUN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOT = REPO / "docs" / "labelstudio-task.png"  # refreshed when BPSRUN_UPDATE_DOCS=1
CLASSES = ["track", "no track"]

# Runs in the Playwright environment: log in, open the task, report what the page shows (JSON on stdout).
BROWSE = r"""
import json, re, sys
from playwright.sync_api import sync_playwright

a = json.loads(sys.argv[1])
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=a["chromium"], args=a["args"])
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(a["url"] + "/user/login/")
    page.fill("input[name=email]", a["user"])
    page.fill("input[name=password]", a["password"])
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(lambda u: "/user/login" not in u, timeout=60000)
    page.goto(f"{a['url']}/projects/{a['project']}/data?task={a['task']}")
    page.wait_for_function(
        "() => [...document.images].some(i => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0)",
        timeout=60000,
    )
    page.wait_for_function("() => [...document.querySelectorAll('label input[type=checkbox]')].some(i => i.checked)",
                           timeout=60000)
    page.wait_for_selector(".lsf-table__row-wrapper", timeout=60000)  # the task list beside it, for the picture
    page.wait_for_load_state("networkidle")
    images = page.evaluate("[...document.images].map(i => ({src: i.src, width: i.naturalWidth}))")
    choices = page.evaluate(
        "[...document.querySelectorAll('label')].filter(l => l.querySelector('input[type=checkbox]'))"
        ".map(l => ({text: l.innerText, checked: l.querySelector('input').checked}))"
    )
    body = page.inner_text("body")
    page.screenshot(path=a["screenshot"])
    browser.close()
print(json.dumps({"images": images, "choices": choices, "body": body}))
"""


def playwright_python() -> Path:
    """Python of an environment with Playwright's package, created (once, under a lock) when missing."""
    python = PLAYWRIGHT_VENV / "bin" / "python"
    check = [str(python), "-c", "import playwright.sync_api"]
    PLAYWRIGHT_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{PLAYWRIGHT_VENV}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
            return python
        steps = [
            [sys.executable, "-m", "venv", str(PLAYWRIGHT_VENV)],
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "playwright"],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                pytest.fail(
                    f"cannot install Playwright into {PLAYWRIGHT_VENV} ({last}); run `python3 -m venv "
                    f"{PLAYWRIGHT_VENV} && {PLAYWRIGHT_VENV}/bin/pip install playwright`, or set "
                    f"BPSRUN_PLAYWRIGHT_VENV to an environment that has it",
                    pytrace=False,
                )
    return python


def png_width(path: Path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]


def api(url: str, token: str, method: str, path: str, **kwargs):
    response = requests.request(method, url + path, headers={"Authorization": f"Token {token}"}, timeout=30, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


def test_a_labeler_sees_the_image_and_the_pre_annotation(shared_data, label_studio):
    if not CHROMIUM.exists():
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y chromium (or set BPSRUN_CHROMIUM)", pytrace=False)
    python = playwright_python()
    outputs, data_dir = Path(label_studio["document_root"]), Path(label_studio["data_dir"])
    url, token = label_studio["url"], label_studio["token"]
    env = {"LABEL_STUDIO_API_KEY": token}
    live = ("labeling=labelstudio", f"labeling.url={url}", "campaign=seen", "labeling.preannotate=true")
    assert run_command(*live, "round=1", outputs=outputs, data=shared_data, env=env, check=False).returncode == 3
    project = next(p for p in api(url, token, "GET", "/api/projects")["results"] if p["title"] == "seen")
    export = {"exportType": "JSON", "download_all_tasks": "true"}
    for k, task in enumerate(api(url, token, "GET", f"/api/projects/{project['id']}/export", params=export)):
        result = [
            {"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": [CLASSES[k % 2]]}}
        ]
        api(url, token, "POST", f"/api/tasks/{task['id']}/annotations", json={"result": result})
    second = run_command(*live, "round=2", outputs=outputs, data=shared_data, env=env, check=False)
    assert second.returncode == 3, second.stderr[-3000:]

    tasks = api(url, token, "GET", f"/api/projects/{project['id']}/export", params=export)
    task_id = next(t["id"] for t in tasks if t["data"]["round"] == 2)
    task = api(url, token, "GET", f"/api/tasks/{task_id}")  # the list and export leave predictions out
    [prediction] = task["predictions"]
    predicted = prediction["result"][0]["value"]["choices"][0]
    render = outputs / "seen" / "round_2" / "labelstudio" / "images" / f"{task['data']['file_name']}.png"

    screenshot = outputs / "labelstudio-task.png"
    args = {
        "url": url,
        "user": "labeler@bpsrun.local",
        "password": (data_dir / "bpsrun-password").read_text().strip(),
        "project": project["id"],
        "task": task_id,
        "chromium": str(CHROMIUM),
        "args": CHROMIUM_ARGS,
        "screenshot": str(screenshot),
    }
    proc = subprocess.run([str(python), "-c", BROWSE, json.dumps(args)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout)

    # the task's image, loaded: the labeling area draws it from the render's bytes (a blob URL)
    loaded = [i for i in seen["images"] if i["src"].startswith("blob:") and i["width"] > 0]
    assert loaded and all(i["width"] == png_width(render) for i in loaded), seen["images"]
    # the previous round's prediction, shown as the checked choice, from bpsrun's model
    checked = [c["text"].split("[")[0].strip() for c in seen["choices"] if c["checked"]]
    assert checked == [predicted], seen["choices"]
    assert "bpsrun-round-1" in seen["body"]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("BPSRUN_UPDATE_DOCS") == "1":
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)
