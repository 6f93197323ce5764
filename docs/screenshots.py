"""Take the MLflow UI screenshots in docs/ from a running MLflow server holding a bpsrun sweep.

Not part of bpsrun (it imports nothing from it) and not run by the tests. It drives Debian's Chromium through
Playwright's Python API, from a separate venv so the project's venv stays as it is:

    apt-get install -y chromium
    python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright    # never `playwright install` (no downloads)

The data (6 campaigns x 3 rounds; 15 min 14 s here, on 2 cores shared with other work):

    cd /work/main && .venv/bin/python -m bpsrun -m selection=random,active,typiclust seed=0,1 round=3 \
        paths.outputs=/tmp/shots/out dataset.num_images=400 selection.n_samples=30 trainer.max_epochs=8 \
        trainer.min_samples_per_epoch=320 embedding.epochs=3 embedding.image_size=32 model.image_size=48 \
        hydra/launcher=basic

(With dataset.num_images=200 selection.n_samples=20 trainer.max_epochs=4 trainer.min_samples_per_epoch=64 the
classifier predicts one class for the whole validation set in all 18 rounds: accuracy 0.225, balanced accuracy
0.5, every learning curve flat, nothing to see in the charts.)

The server (any free port; stop it afterwards by its process id):

    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false .venv/bin/mlflow server --workers 1 \
        --backend-store-uri sqlite:////tmp/shots/out/mlflow.db --host 127.0.0.1 --port 33749

No --default-artifact-root / --artifacts-destination is needed: bpsrun's experiment has a file:// artifact
location and the server lists and serves those artifacts itself.

Then:

    /tmp/pw/bin/python docs/screenshots.py http://127.0.0.1:33749 [--out docs] [--experiment bpsrun-synthetic]

It prints what it finds on the way (the URL each step lands on, the landing view of the experiment) and writes
    mlflow-landing-default.png  what a new user sees after clicking the experiment on the home page
    mlflow-runs-table.png       the runs table (Model training view) with val/accuracy and selection.name columns
    mlflow-runs-chart.png       the runs page's chart view: every campaign's val/accuracy against labels
    mlflow-runs-chart-mixed.png the same with one campaign opened: its rounds' per-epoch val/accuracy joins in
    mlflow-compare.png          Compare of the campaign parent runs: parallel coordinates selection.name -> val/accuracy
    mlflow-compare-scatter.png  the same runs as a scatter plot, x = param selection.name, y = metric val/accuracy
    mlflow-learning-curve.png   one campaign parent run's val/accuracy chart, x = step = number of labels
    mlflow-round-run.png        one round run's train/loss curve (the live Lightning curve)
    mlflow-round-artifacts.png  the same round run's artifacts, picks.png open
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}


def log(*args) -> None:
    print(*args, flush=True)


def api(base: str, path: str, body: dict | None = None) -> dict:
    """The tracking server's REST API, to find run ids (the screenshots themselves go through the UI)."""
    url = f"{base}/api/2.0/mlflow/{path}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def find_runs(base: str, experiment: str) -> tuple[str, list[dict]]:
    exp = api(base, "experiments/get-by-name?" + urllib.parse.urlencode({"experiment_name": experiment}))
    exp_id = exp["experiment"]["experiment_id"]
    runs: list[dict] = []
    token = None
    while True:
        body = {"experiment_ids": [exp_id], "max_results": 1000}
        if token:
            body["page_token"] = token
        page = api(base, "runs/search", body)
        runs += page.get("runs", [])
        token = page.get("next_page_token")
        if not token:
            return exp_id, runs


def curve(base: str, run: dict, metric: str = "val/accuracy") -> list[tuple[int, float]]:
    query = urllib.parse.urlencode({"run_id": run["info"]["run_id"], "metric_key": metric})
    history = api(base, f"metrics/get-history?{query}").get("metrics", [])
    return sorted((int(m.get("step", 0)), float(m["value"])) for m in history)


def tag(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["data"].get("tags", []) if t["key"] == key), None)


def settle(page: Page, seconds: float = 2.0) -> None:
    """Wait for the page's spinners and skeletons to go, then a little more for charts to draw."""
    deadline = time.monotonic() + 30
    spinner = "[class*='spin'], [class*='Spinner'], [class*='skeleton'], [class*='Skeleton'], [role=progressbar]"
    while time.monotonic() < deadline:
        if page.locator(spinner).filter(visible=True).count() == 0:
            break
        time.sleep(0.5)
    time.sleep(seconds)


def close_assistant(page: Page) -> None:
    """MLflow 3.17 opens its 'MLflow Assistant' panel on first load; it takes a quarter of the width."""
    button = page.get_by_role("button", name="Close", exact=True)
    if button.count() and button.first.is_visible():
        button.first.click()
        time.sleep(0.5)


def dismiss_tips(page: Page) -> None:
    """First-visit tips ('Detect Issues in Your Traces ... Got it') block every click until dismissed."""
    for name in ("Got it", "Dismiss"):
        button = page.get_by_role("button", name=name, exact=True).filter(visible=True)
        for i in range(button.count()):
            button.nth(i).click()
            time.sleep(0.5)


def heading(page: Page) -> str:
    h = page.locator("h1, h2").filter(visible=True)
    return h.first.inner_text().strip() if h.count() else ""


def pick_option(page: Page, combo, text: str) -> None:
    """Choose `text` in one of the UI's (Du Bois / antd) multi-selects."""
    combo.click()
    combo.fill(text)
    page.locator(f"[class*='select-item-option'][title='{text}']").filter(visible=True).first.click()
    time.sleep(0.5)


def landing(page: Page, base: str, experiment: str, out: Path) -> dict:
    """Home page -> click the experiment, as a new user (fresh profile) would."""
    page.goto(base + "/", wait_until="load")
    link = page.get_by_role("link", name=experiment, exact=True).first
    link.wait_for(timeout=30000)
    link.click()
    settle(page, 2)
    seen = {"url_clicked": page.url}
    last, stable_since = page.url, time.monotonic()
    while time.monotonic() - stable_since < 3 and time.monotonic() - stable_since < 30:  # the UI redirects once
        time.sleep(0.25)
        if page.url != last:
            last, stable_since = page.url, time.monotonic()
    settle(page, 1)
    seen.update(url=page.url, heading=heading(page))
    log(f"landing: {seen['url']} heading={seen['heading']!r}")
    page.screenshot(path=str(out / "mlflow-landing-default.png"))
    dismiss_tips(page)
    return seen


def runs_table(page: Page, base: str, exp_id: str, out: Path, expand_campaign: str | None) -> dict:
    """Switch the sidebar to 'Model training' (what a new user must do), add metric and param columns."""
    page.get_by_text("Model training", exact=True).first.click()
    settle(page, 3)
    seen = {"url_after_toggle": page.url, "heading_after_toggle": heading(page)}
    log(f"after 'Model training': {seen['url_after_toggle']} heading={seen['heading_after_toggle']!r}")
    if "Runs" not in seen["heading_after_toggle"]:
        page.goto(f"{base}/#/experiments/{exp_id}/runs?workflowType=machine_learning", wait_until="load")
        settle(page, 3)
    close_assistant(page)
    page.get_by_role("button", name="Columns").click()
    dialog = page.locator("[data-component-id='mlflow.experiment_page.runs_table.column_selector']")
    search = dialog.get_by_placeholder("Search columns")

    def set_column(column: str, on: bool) -> None:
        search.fill(column)
        time.sleep(0.7)
        nodes = dialog.locator("[class*='tree-treenode']").filter(
            has=page.locator("[class*='tree-title']", has_text=re.compile(f"^{re.escape(column)}$"))
        )
        for i in range(nodes.count()):  # a name can be both a metric and a param
            box = nodes.nth(i).locator("[class*='tree-checkbox']").first
            checked = "tree-checkbox-checked" in (box.get_attribute("class") or "")
            if box.is_visible() and checked != on:
                box.click()
                time.sleep(0.3)

    for column in ["val/accuracy", "final_val_accuracy", "aulc", "selection.name", "seed"]:
        set_column(column, True)
    for column in ["Source", "Models", "Dataset"]:  # always empty for bpsrun runs: room for the others
        set_column(column, False)
    page.keyboard.press("Escape")
    # open one campaign so its round runs show under it (the button left of the run's colour dot)
    expander = None
    if expand_campaign:
        cell = page.get_by_text(expand_campaign, exact=True).first.locator("xpath=ancestor::*[@role='gridcell'][1]")
        expander = cell.locator("button").first
        expander.click()
    settle(page, 2)
    page.screenshot(path=str(out / "mlflow-runs-table.png"), full_page=True)
    if expander is not None:  # fold it again: ticking an open parent also ticks its rounds (the Compare step)
        expander.click()
        time.sleep(0.5)
    return seen


def compare(page: Page, base: str, exp_id: str, parents: list[dict], out: Path) -> dict:
    """Select the campaign parent runs in the table and press Compare."""
    page.goto(f"{base}/#/experiments/{exp_id}/runs?workflowType=machine_learning", wait_until="load")
    settle(page, 3)
    close_assistant(page)
    names = {p["info"]["run_name"] for p in parents}
    rows = page.locator("[role=row]")
    picked = 0
    for i in range(rows.count()):
        text = rows.nth(i).inner_text()
        if any(re.search(rf"(^|\n){re.escape(n)}(\n|$)", text) for n in names):
            rows.nth(i).get_by_role("checkbox").first.check()
            picked += 1
    log(f"compare: ticked {picked} of {len(names)} campaign runs")
    page.get_by_role("button", name="Compare", exact=True).click()
    page.get_by_text("Parallel Coordinates Plot").first.wait_for(timeout=30000)
    settle(page, 3)
    seen = {"url": page.url, "heading": heading(page)}
    log(f"compare: {seen['heading']!r}")
    page.get_by_role("button", name="Clear All").click()
    combos = page.get_by_role("combobox")
    pick_option(page, combos.nth(0), "selection.name")
    pick_option(page, combos.nth(0), "seed")
    page.keyboard.press("Escape")
    pick_option(page, combos.nth(1), "val/accuracy")
    pick_option(page, combos.nth(1), "aulc")
    page.keyboard.press("Escape")
    page.mouse.click(5, 890)
    settle(page, 3)
    clip = visual_clip(page)
    page.screenshot(path=str(out / "mlflow-compare.png"), clip=clip)

    page.get_by_text("Scatter Plot", exact=True).first.click()
    settle(page, 2)
    scatter_axes(page)
    settle(page, 3)
    page.screenshot(path=str(out / "mlflow-compare-scatter.png"), clip=visual_clip(page))
    return seen


def visual_clip(page: Page) -> dict:
    """The page from its top through the visualisation and the first rows of 'Run details'."""
    details = page.get_by_text("Run details").first.bounding_box()
    height = (details["y"] + 260) if details else 900
    return {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": max(900, height)}


def scatter_axes(page: Page) -> None:
    """X axis: param selection.name, Y axis: metric val/accuracy (the scatter tab's two single selects)."""
    for selector, choice in (("#x-axis-selector", "selection.name"), ("#y-axis-selector", "val/accuracy")):
        page.locator(selector).click()
        time.sleep(0.5)
        page.get_by_role("option").filter(visible=True).filter(
            has=page.locator("label", has_text=re.compile(f"^{re.escape(choice)}$"))
        ).first.click()
        time.sleep(0.5)


def run_chart(page: Page, base: str, exp_id: str, run: dict, metric: str, path: Path) -> dict:
    """A run's Model metrics tab, filtered down to one metric's chart."""
    run_id = run["info"]["run_id"]
    page.goto(f"{base}/#/experiments/{exp_id}/runs/{run_id}/model-metrics?workflowType=machine_learning")
    settle(page, 3)
    close_assistant(page)
    search = page.get_by_placeholder(re.compile("Search", re.I)).filter(visible=True)
    if search.count():
        search.first.fill(metric)
        settle(page, 2)
    seen = {"url": page.url, "heading": heading(page)}
    enlarge = page.locator("button[data-component-id='fullscreen_button_chartcard']").filter(visible=True)
    if enlarge.count():
        enlarge.first.click()
        settle(page, 2)
    page.screenshot(path=str(path), full_page=True)
    page.keyboard.press("Escape")
    return seen


def runs_chart(page: Page, path: Path, mixed_path: Path, campaign: str) -> dict:
    """The runs page's chart view: every campaign's val/accuracy on one chart (round runs folded away); then the
    same chart with one campaign opened, where its round runs' per-epoch val/accuracy joins the learning curves."""
    page.locator("input[value='CHART']").first.locator("xpath=ancestor::label[1]").click()  # the view switch
    settle(page, 3)
    search = page.get_by_placeholder(re.compile("Search metric charts", re.I)).filter(visible=True)
    if search.count():
        search.first.fill("val/accuracy")
        settle(page, 2)
    enlarge = page.locator("button[data-component-id='fullscreen_button_chartcard']").filter(visible=True)
    if enlarge.count():
        enlarge.first.click()
        settle(page, 2)
    page.screenshot(path=str(path), full_page=True)
    page.keyboard.press("Escape")
    time.sleep(0.5)
    cell = page.get_by_text(campaign, exact=True).first.locator("xpath=ancestor::*[@role='gridcell'][1]")
    expander = cell.locator("button").first
    expander.click()
    settle(page, 3)
    page.screenshot(path=str(mixed_path), full_page=True)
    expander.click()  # fold it again for the Compare step
    time.sleep(0.5)
    return {"url": page.url}


def artifacts(page: Page, base: str, exp_id: str, run: dict, path: Path) -> dict:
    run_id = run["info"]["run_id"]
    page.goto(f"{base}/#/experiments/{exp_id}/runs/{run_id}/artifacts?workflowType=machine_learning")
    settle(page, 3)
    close_assistant(page)
    page.get_by_text("picks.png", exact=True).first.click()
    settle(page, 3)
    files = [
        f
        for f in (
            "config.yaml",
            "confusion.png",
            "labels.json",
            "metrics.json",
            "picks.png",
            "predictions.zip",
            "selected.txt",
        )
        if page.get_by_text(f, exact=True).count()
    ]
    page.screenshot(path=str(path), full_page=True)
    return {"url": page.url, "files_listed": files}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", help="the MLflow server, e.g. http://127.0.0.1:5000")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--experiment", default="bpsrun-synthetic")
    ap.add_argument(
        "--campaign", default=None, help="parent run for the learning curve (default: the one that gains most)"
    )
    ap.add_argument("--chromium", default=CHROMIUM)
    args = ap.parse_args()
    base = args.url.rstrip("/")
    args.out.mkdir(parents=True, exist_ok=True)

    exp_id, runs = find_runs(base, args.experiment)
    parents = sorted((r for r in runs if tag(r, "bpsrun.kind") == "campaign"), key=lambda r: r["info"]["run_name"])
    rounds = sorted((r for r in runs if tag(r, "bpsrun.kind") == "round"), key=lambda r: r["info"]["run_name"])
    if not parents or not rounds:
        sys.exit(f"{args.experiment}: no campaign or round runs at {base}")
    if args.campaign:
        parent = next(p for p in parents if p["info"]["run_name"] == args.campaign)
    else:  # the campaign whose learning curve rises most, so the chart shows a learning curve
        parent = max(parents, key=lambda p: (lambda c: c[-1][1] - c[0][1] if c else -1)(curve(base, p)))
    round_run = next(
        (
            r
            for r in rounds
            if tag(r, "mlflow.parentRunId") == parent["info"]["run_id"] and tag(r, "bpsrun.round") == "2"
        ),
        rounds[0],
    )
    log(f"experiment {args.experiment} = {exp_id}: {len(parents)} campaigns, {len(rounds)} rounds, {len(runs)} runs")

    found: dict = {}
    with tempfile.TemporaryDirectory(prefix="mlflow-shots-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=args.chromium, args=ARGS, headless=True, viewport=VIEWPORT
        )
        page = ctx.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text[:300]) if m.type == "error" else None)
        page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
        found["landing"] = landing(page, base, args.experiment, args.out)
        found["runs_table"] = runs_table(page, base, exp_id, args.out, parent["info"]["run_name"])
        found["runs_chart"] = runs_chart(
            page,
            args.out / "mlflow-runs-chart.png",
            args.out / "mlflow-runs-chart-mixed.png",
            parent["info"]["run_name"],
        )
        found["compare"] = compare(page, base, exp_id, parents, args.out)
        found["learning_curve"] = run_chart(
            page, base, exp_id, parent, "val/accuracy", args.out / "mlflow-learning-curve.png"
        )
        found["round_run"] = run_chart(page, base, exp_id, round_run, "train/loss", args.out / "mlflow-round-run.png")
        found["round_artifacts"] = artifacts(page, base, exp_id, round_run, args.out / "mlflow-round-artifacts.png")
        found["errors"] = sorted(set(errors))
        found["campaign"] = parent["info"]["run_name"]
        found["round_run_name"] = round_run["info"]["run_name"]
        ctx.close()
    print(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
