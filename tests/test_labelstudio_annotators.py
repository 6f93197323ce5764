"""Two annotators on one campaign's project, live mode, against the real Label Studio 1.23 of the session.

The second user joins the first user's organization through `python -m bpsrun.label.server add-user` (the invite
link), `labeling.overlap` is read back from the project as the server keeps it, and the round's agreement and
labeling time are checked against what the server reports of both users' annotations.
"""

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import cohen_kappa_score

from bpsrun.label.agreement import agreement_metrics
from bpsrun.label.consensus import majority
from bpsrun.label.server import USERS_DIR
from bpsrun.label.studio_api import LabelStudio
from bpsrun.label.timing import labeling_metrics
from tests.conftest import run_command
from tests.test_labelstudio_live import api, project_tasks
from tests.test_labelstudio_server import launcher

pytestmark = pytest.mark.slow  # a real server, the command

CLASSES = ["track", "no track"]
SECOND = "second@bpsrun.local"
CAMPAIGN = "two-annotators"


@pytest.fixture(scope="module")
def second_token(label_studio) -> str:
    """A second user of the session's server, added as a lab would: their legacy API token."""
    data_dir = Path(label_studio["data_dir"])
    proc = launcher("add-user", "--email", SECOND, "--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    token_file = data_dir / USERS_DIR / f"{SECOND}.token"
    assert f"export LABEL_STUDIO_API_KEY=$(cat {token_file})" in proc.stdout
    token = token_file.read_text().strip()
    password = (data_dir / USERS_DIR / f"{SECOND}.password").read_text().strip()
    assert token not in proc.stdout + proc.stderr and password not in proc.stdout + proc.stderr
    assert token_file.stat().st_mode & 0o777 == 0o600
    return token


def whoami(url: str, token: str) -> dict:
    return api(url, token, "GET", "/api/current-user/whoami")


def test_add_user_joins_the_first_users_organization(label_studio, second_token):
    url, token = label_studio["url"], label_studio["token"]
    first, second = whoami(url, token), whoami(url, second_token)
    assert second["email"] == SECOND and second["id"] != first["id"]
    assert second["active_organization"] == first["active_organization"]
    # a project of the first user is the second's too, through bpsrun's own client (legacy `Token` header)
    LabelStudio(url, token).project("shared-by-both", "<View></View>")
    assert LabelStudio(url, second_token).find_project("shared-by-both") is not None
    # the same command again: the user is there already, nothing changes
    again = launcher("add-user", "--email", SECOND, "--data-dir", label_studio["data_dir"])
    assert again.returncode == 0 and f"{SECOND} is already a user at {url}" in again.stdout
    assert (Path(label_studio["data_dir"]) / USERS_DIR / f"{SECOND}.token").read_text().strip() == second_token


def project_settings(url: str, token: str, campaign: str) -> tuple[int, int]:
    """The campaign's project's (maximum_annotations, overlap_cohort_percentage), as GET /api/projects/<id> says."""
    found = LabelStudio(url, token).find_project(campaign)
    project = api(url, token, "GET", f"/api/projects/{found['id']}")
    return project["maximum_annotations"], project["overlap_cohort_percentage"]


def annotate(url: str, token: str, task_id: int, label: str, lead_time: float) -> None:
    result = [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]
    api(url, token, "POST", f"/api/tasks/{task_id}/annotations/", json={"result": result, "lead_time": lead_time})


def round_run_metrics(tracking_uri: str, campaign: str, r: int) -> dict[str, float]:
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("bpsrun-synthetic").experiment_id
    query = f"tags.`bpsrun.campaign` = '{campaign}' and tags.`bpsrun.kind` = 'round' and tags.`bpsrun.round` = '{r}'"
    runs = [run for run in client.search_runs([experiment], query) if run.info.status == "FINISHED"]
    assert len(runs) == 1
    return runs[0].data.metrics


def test_two_annotators_label_one_round(label_studio, second_token, shared_data, tmp_path):
    url, token, outputs = label_studio["url"], label_studio["token"], Path(label_studio["document_root"])
    env = {"LABEL_STUDIO_API_KEY": token}
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    live = (
        "labeling=labelstudio",
        f"labeling.url={url}",
        f"campaign={CAMPAIGN}",
        "round=1",
        f"tracking.uri={tracking}",
    )

    # the project is created with the overlap asked for
    first = run_command(*live, "labeling.overlap=0.25", outputs=outputs, data=shared_data, env=env, check=False)
    assert first.returncode == 3, first.stderr[-3000:]
    assert project_settings(url, token, CAMPAIGN) == (2, 25)
    tasks = project_tasks(url, token, CAMPAIGN)
    picks = (outputs / CAMPAIGN / "round_1" / "selected.txt").read_text().splitlines()
    assert sorted(t["data"]["file_name"] for t in tasks) == sorted(picks) and len(picks) == 8

    # both label every task, over REST with their own tokens; they disagree on three
    ids = {whoami(url, token)["id"], whoami(url, second_token)["id"]}
    for k, task in enumerate(tasks):
        annotate(url, token, task["id"], CLASSES[k % 2], 2.5 + k)
    # every image has a label, but the two tasks of the 25 % cohort await their second: the round does not train
    waiting = run_command(*live, "labeling.overlap=0.25", outputs=outputs, data=shared_data, env=env, check=False)
    assert waiting.returncode == 3, waiting.stderr[-3000:]
    assert "round 1: 2 of 8 tasks still wait for the second annotation" in waiting.stderr
    assert not (outputs / CAMPAIGN / "round_1" / "labels.json").exists()
    for k, task in enumerate(tasks):
        mine = CLASSES[k % 2]
        annotate(url, second_token, task["id"], CLASSES[1 - k % 2] if k in (1, 4, 6) else mine, 10.25 + 3 * k)

    # the rerun updates the project's overlap and trains on both users' labels
    run_command(*live, "labeling.overlap=1.0", outputs=outputs, data=shared_data, env=env)
    assert project_settings(url, token, CAMPAIGN) == (2, 100)
    root = outputs / CAMPAIGN / "round_1"
    labels = json.loads((root / "labels.json").read_text())
    assert sorted((r["file_name"], r["annotator"]) for r in labels) == sorted((f, str(u)) for f in picks for u in ids)
    assert (root / "metrics.json").exists()

    # what the server holds: each user's label and lead_time of every task
    served = {
        (task["data"]["file_name"], a["completed_by"]): a
        for task in tasks
        for a in api(url, token, "GET", f"/api/tasks/{task['id']}/annotations/")
    }
    assert len(served) == 16
    first_id, second_id = sorted(ids)
    label = {key: a["result"][0]["value"]["choices"][0] for key, a in served.items()}
    kappa = cohen_kappa_score([label[f, first_id] for f in picks], [label[f, second_id] for f in picks])
    seconds = sum(a["lead_time"] for a in served.values())
    assert 0 < kappa < 1

    # as the campaign logged them to the round's MLflow run, and as its functions compute them from labels.json
    logged = round_run_metrics(tracking, CAMPAIGN, 1)
    assert logged["agreement/images"] == 8 and logged["labeling/annotations"] == 16
    assert logged["agreement/kappa"] == pytest.approx(kappa, abs=1e-6)
    assert logged["labeling/seconds"] == pytest.approx(seconds)
    consensus = majority(labels, CLASSES, seed=0)
    assert agreement_metrics(labels, consensus, CLASSES, 1)["agreement/kappa"] == pytest.approx(kappa, abs=1e-6)
    assert labeling_metrics(labels, cap=600)["labeling/seconds"] == pytest.approx(seconds)
