"""labeling=labelstudio: a round's picks go to Label Studio as 8-bit renders and come back as labels.

File mode (no `labeling.url`): the round writes `round_<N>/labelstudio/` (renders, tasks.json, label_config.xml,
NEXT_STEPS.txt) and stops awaiting labels; a rerun reads the export saved into that folder. Live mode
(`labeling.url`, token from LABEL_STUDIO_API_KEY): the same tasks are imported into a project named after the
campaign and the labels are fetched through the API. Both refuse, before anything is written, a campaign folder
outside `labeling.document_root`; live mode also a server serving local files below another folder.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from bpsrun.data.images import png_bytes
from bpsrun.errors import AwaitingLabels, BpsrunError
from bpsrun.files import atomic_dir, atomic_write_text
from bpsrun.label.base import LabelContext
from bpsrun.label.exports import Annotation, flatten, one_vote_each, parse, read_export
from bpsrun.label.jsonmin import CHOICE_KEY, record
from bpsrun.label.studio_api import LabelStudio
from bpsrun.progress import progress

log = logging.getLogger("bpsrun")

TOKEN_ENV = "LABEL_STUDIO_API_KEY"


PACKAGE_FILES = ("tasks.json", "label_config.xml", "NEXT_STEPS.txt")  # what bpsrun writes beside images/
# a task's data.kind: a round's pick, a pick of an earlier round asked for another annotation, a held-out image
TRAINING, RELABEL, VALIDATION = "training", "relabel", "validation"


def label_config(classes: list[str]) -> str:
    choices = "".join(f"<Choice value={quoteattr(c)}/>" for c in classes)
    return f'<View><Image name="image" value="$image"/><Choices name="{CHOICE_KEY}" toName="image">{choices}</Choices></View>'


def render_name(file: str) -> str:
    """`x.tif` -> `x.tif.png`: the original name stays recoverable from the image URL alone."""
    return f"{file}.png"


def overlap_settings(overlap: float) -> dict[str, int]:
    """labeling.overlap -> the project's fields: Label Studio asks a second annotator for that share of tasks."""
    if overlap == 0:
        return {"maximum_annotations": 1}
    return {"maximum_annotations": 2, "overlap_cohort_percentage": max(1, round(overlap * 100))}


def check_overlap(overlap: Any) -> float:
    if isinstance(overlap, bool) or not isinstance(overlap, int | float) or not 0 <= overlap <= 1:
        raise BpsrunError(
            f"labeling.overlap={overlap!r}: use a share between 0 and 1 (of tasks that get two annotations)"
        )
    return float(overlap)


def preannotation(probs: np.ndarray, classes: list[str], r: int) -> dict[str, Any]:
    best = int(np.argmax(probs))
    result = [{"from_name": CHOICE_KEY, "to_name": "image", "type": "choices", "value": {"choices": [classes[best]]}}]
    return {"model_version": f"bpsrun-round-{r - 1}", "score": float(probs[best]), "result": result}


@dataclass(frozen=True)
class StudioSettings:
    """conf/labeling/labelstudio.yaml's keys (documented there)."""

    url: str | None
    document_root: str
    wait: bool
    poll_s: float
    timeout_s: float | None
    preannotate: bool
    partial: str
    overlap: float = 0.0


class LabelStudioLabeler:
    def __init__(self, context: LabelContext, **settings: Any):
        self.cfg = StudioSettings(**settings)
        self.campaign = context.campaign
        self.classes = context.classes
        self.image_path = context.image_path
        self.layout = context.layout
        self.predictions = context.previous_probs
        self.require_val = context.require_val
        self.document_root = Path(self.cfg.document_root).resolve()
        if self.cfg.partial not in ("wait", "proceed"):
            raise BpsrunError(f"labeling.partial={self.cfg.partial!r}: use wait or proceed")
        self.overlap = check_overlap(self.cfg.overlap)
        self.check_document_root()
        self.client = None
        self.project = None
        if self.cfg.url:
            token = os.environ.get(TOKEN_ENV)
            if not token:
                raise BpsrunError(
                    f"labeling.url is set but {TOKEN_ENV} is empty; export your Label Studio access token"
                )
            self.client = LabelStudio(self.cfg.url, token)
            self.project = self.check_server()

    # -- before anything is written: can Label Studio serve this campaign's renders? ---------------------

    def check_document_root(self) -> None:
        """Every render lies in the campaign folder, which must lie below labeling.document_root."""
        root = self.layout.root.resolve()
        if not root.is_relative_to(self.document_root):
            raise BpsrunError(
                f"the campaign folder {root} is not below labeling.document_root={self.document_root}, so Label "
                f"Studio could not serve its renders; set labeling.document_root to a folder holding it (e.g. "
                f"{root.parent}) and start Label Studio with the same --document-root"
            )

    def check_server(self) -> int:
        """The campaign's project (created if missing), once the server is known to serve local files below
        labeling.document_root. A mismatch is refused before any task is imported (or anything written)."""
        settings = overlap_settings(self.overlap)
        project, created = self.client.project(self.campaign, label_config(self.classes), settings)
        served = self.client.document_root(project)
        if served is None or Path(served).resolve() == self.document_root:
            return project
        if created:
            self.client.delete_project(project)
        root = self.layout.root.resolve()
        fix = f"restart Label Studio with --document-root {self.document_root}"
        if served == "/":  # Label Studio's default: started without local files serving
            fix = (
                f"start Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
                f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={self.document_root} (python -m bpsrun.label.server "
                f"--document-root {self.document_root} does)"
            )
        elif root.is_relative_to(Path(served).resolve()):
            fix = f"set labeling.document_root={served}, or {fix}"
        raise BpsrunError(
            f"Label Studio at {self.cfg.url} serves local files below {served} (its --document-root, "
            f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT) but labeling.document_root={self.document_root}; {fix}"
        )

    # -- the round's package -----------------------------------------------------------------------------

    def folder(self, r: int) -> Path:
        return self.layout.labelstudio(r)

    def url_of(self, path: Path) -> str:
        try:
            relative = path.resolve().relative_to(self.document_root)
        except ValueError:
            raise BpsrunError(
                f"{path} is outside labeling.document_root={self.document_root}; set it to a folder holding the "
                f"campaign (Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)"
            ) from None
        return f"/data/local-files/?d={quote(relative.as_posix(), safe='')}"

    def packages(self) -> dict[Path, list[dict[str, Any]]]:
        """Every round's labelstudio folder with a tasks.json -> its tasks, in round order."""
        folders = sorted(self.layout.root.glob("round_*/labelstudio/tasks.json"), key=lambda p: int(p.parts[-3][6:]))
        return {f.parent: json.loads(f.read_text()) for f in folders}

    def tasks(self, r: int, picks: list[str], validation: list[str]) -> list[dict[str, Any]]:
        images = self.folder(r) / "images"
        probs = self.predictions(r, picks) if self.cfg.preannotate else None
        before = set(self.layout.labeled_before(r)) if picks else set()
        kinds = [(f, RELABEL if f in before else TRAINING) for f in picks] + [(f, VALIDATION) for f in validation]
        out = []
        for k, (f, kind) in enumerate(kinds):
            data = {
                "image": self.url_of(images / render_name(f)),
                "file_name": f,
                "campaign": self.campaign,
                "round": r,
                "kind": kind,
            }
            task: dict[str, Any] = {"data": data}
            # validation labels stay unprompted (they judge the model), and so does a second opinion on a pick
            if probs is not None and kind == TRAINING:
                task["predictions"] = [preannotation(probs[k], self.classes, r)]
            out.append(task)
        return out

    def write_package(self, r: int, picks: list[str], validation: list[str]) -> None:
        """Renders, tasks.json and label_config.xml, all at once (atomic folder); in file mode NEXT_STEPS.txt.
        Validation images go with the first package that has them to send (marked `kind: validation`)."""
        folder = self.folder(r)
        steps = self.client is None
        if (folder / "tasks.json").exists():
            if steps and not (folder / "NEXT_STEPS.txt").exists():  # the round began in live mode
                atomic_write_text(folder / "NEXT_STEPS.txt", self.next_steps(r, len(picks)))
            return
        sent = {t["data"]["file_name"] for tasks in self.packages().values() for t in tasks}
        validation = [f for f in validation if f not in sent]
        tasks = self.tasks(r, picks, validation)
        with atomic_dir(folder) as tmp:
            for kept in folder.glob("*") if folder.is_dir() else ():  # the labeller's exports: never lost
                if kept.is_file() and kept.name not in PACKAGE_FILES:
                    shutil.copy2(kept, tmp / kept.name)
            (tmp / "images").mkdir()
            for f in [*picks, *validation]:
                (tmp / "images" / render_name(f)).write_bytes(png_bytes(self.image_path(f)))
            (tmp / "tasks.json").write_text(json.dumps(tasks, indent=1))
            (tmp / "label_config.xml").write_text(label_config(self.classes) + "\n")
            if steps:
                (tmp / "NEXT_STEPS.txt").write_text(self.next_steps(r, len(picks), len(validation)))

    def next_steps(self, r: int, n: int, n_val: int = 0) -> str:
        folder = self.folder(r).resolve()
        rerun = shlex.join([Path(sys.executable).name, "-m", "bpsrun", *sys.argv[1:]])
        what = f"{n} images"
        if n_val:
            what = (
                f"{n + n_val} images: {n} picks and {n_val} validation images (task data kind=validation: they "
                f"measure every round's model and never train one; filter the data manager by kind to do them apart)"
            )
        return f"""Round {r} of campaign {self.campaign} awaits labels for {what}.

1. Start Label Studio serving local files below {self.document_root}:
     python -m bpsrun.label.server --detach --reuse --document-root {self.document_root}
   (user and password: its output; `python -m bpsrun.label.server stop` stops it)
   (or by hand: LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
    LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={self.document_root} label-studio start)
2. Create a project; Settings > Labeling Interface > Code: paste {folder}/label_config.xml
3. Settings > Cloud Storage > Add Source Storage > Local files, absolute local path {folder}/images
   (Add Storage; do not sync: the tasks file already points at the images)
4. Import {folder}/tasks.json
5. Label every task; Export > JSON-MIN; save the file into {folder}/
   (any name ending in .json, e.g. export.json or annotation-{r}.json)
6. Rerun: {rerun}
"""

    # -- labels --------------------------------------------------------------------------------------------

    def label(self, r: int, picks: list[str], validation: list[str]) -> list[dict[str, Any]]:
        self.write_package(r, picks, validation)
        packages = self.packages()
        if self.client is None:
            found, source = self.from_exports(r, validation, packages)
        else:
            found, source = self.live(r, picks, validation), f"project {self.campaign!r} at {self.cfg.url}"
        labels = {a.file for a in found} & set(picks)  # images with at least one annotation
        val = {a.file for a in found} & set(validation)
        if picks and (not labels or (len(labels) < len(picks) and self.cfg.partial == "wait")):
            raise AwaitingLabels(self.waiting_message(r, len(labels), len(picks), source, len(val), len(validation)))
        if self.client is not None and self.cfg.partial == "wait" and (short := self.short_of_overlap(self.project, r)):
            raise AwaitingLabels(
                f"round {r}: {short} of {len(picks)} tasks still wait for the second annotation Label Studio's "
                f"overlap asks for (labeling.overlap={self.overlap}); have another annotator label them and rerun, "
                f"or set labeling.wait=true to wait, or labeling.partial=proceed to train on what is in"
            )
        if len(labels) < len(picks):
            log.warning(
                "round %d: proceeding with %d of %d images labeled (labeling.partial=proceed)",
                r,
                len(labels),
                len(picks),
            )
        sent_in = {t["data"]["file_name"]: folder for folder, tasks in packages.items() for t in tasks}
        sent_in |= dict.fromkeys(picks, self.folder(r))  # a relabel was sent in an earlier round too: this one's
        return [self.as_record(a, sent_in[a.file]) for a in found if a.file in labels | val]

    def from_exports(
        self, r: int, validation: list[str], packages: dict[Path, list[dict[str, Any]]]
    ) -> tuple[list[Annotation], str]:
        """Each annotator's newest label per image in the exports saved beside round r's tasks (and, for validation images,
        beside any round's tasks: the labeller may finish them in the project they came with)."""
        folders = list(packages) if validation else [self.folder(r)]
        held_out = set(validation)
        annotations, read = [], []
        for folder in folders:
            names = [t["data"]["file_name"] for t in packages.get(folder, [])]
            for path in sorted(p for p in folder.glob("*.json") if p.name != "tasks.json"):
                found = parse(read_export(path), names, self.classes, self.campaign)
                if folder != self.folder(r):  # only validation labels: a relabel's earlier votes are that round's
                    found = [a for a in found if a.file in held_out]
                annotations += found
                read.append(path.name if folder == self.folder(r) else f"{folder.parent.name}/{path.name}")
        return one_vote_each(annotations), ", ".join(read) or "no export yet"

    def as_record(self, a: Annotation, folder: Path) -> dict[str, Any]:
        url = self.url_of(folder / "images" / render_name(a.file))
        rec = record(a.task_id or 0, a.file, url, a.label, a.annotator)
        return {**rec, "annotation_id": a.annotation_id, "updated_at": a.updated_at, "lead_time": a.lead_time}

    def waiting_message(self, r: int, done: int, n: int, source: str, val_done: int, n_val: int) -> str:
        val = f"; {val_done} of {n_val} validation images" if n_val else ""
        if self.client is not None:
            return (
                f"round {r}: {done} of {n} images labeled{val} in Label Studio ({source}); label the rest and "
                f"rerun, or set labeling.wait=true to wait, or labeling.partial=proceed to continue with what is "
                f"labeled"
            )
        steps = self.folder(r) / "NEXT_STEPS.txt"
        head = f"round {r}: {done} of {n} images labeled{val} ({source}); "
        return head + f"label them in Label Studio and save the export into {self.folder(r)}:\n\n{steps.read_text()}"

    # -- live mode -----------------------------------------------------------------------------------------

    def live(self, r: int, picks: list[str], validation: list[str]) -> list[Annotation]:
        """Storage and tasks (imported once, after Label Studio is seen serving a render), then JSON-MIN of the
        round and of the validation images, waiting if asked to."""
        client, project = self.client, self.project
        images = self.folder(r) / "images"
        client.local_storage(project, str(images.resolve()), f"{self.campaign} round {r}")
        present = {task_key(rec) for rec in client.export_min(project)}
        missing = []
        for task in json.loads((self.folder(r) / "tasks.json").read_text()):
            if task_key(task["data"]) not in present:
                file = images / render_name(task["data"]["file_name"])
                missing.append({**task, "data": {**task["data"], "image": self.url_of(file)}})
        if missing:
            self.check_served(images / render_name(missing[0]["data"]["file_name"]))
            client.import_tasks(project, missing)
            log.info("round %d: imported %d tasks into Label Studio project %r", r, len(missing), self.campaign)
        return self.poll(project, r, picks, validation)

    def short_of_overlap(self, project: int, r: int) -> int:
        """Round r's tasks that have an annotation but fewer than the project's overlap asks for (0 without
        labeling.overlap): Label Studio decides which tasks get a second annotator, and marks them labeled once
        both are in."""
        if not self.overlap:
            return 0
        picks = [t for t in self.client.tasks(project) if t["data"].get("round") == r]
        started = [t for t in picks if t["data"].get("kind") != VALIDATION and t["total_annotations"]]
        return sum(not t["is_labeled"] for t in started)

    def check_served(self, render: Path) -> None:
        """Label Studio hands out this render as the tasks will ask for it, byte for byte."""
        url = self.url_of(render)
        response = self.client.get_file(url)
        if response.status_code != 200 or response.content != render.read_bytes():
            got = f"HTTP {response.status_code}" if response.status_code != 200 else "another file"
            raise BpsrunError(
                f"Label Studio at {self.cfg.url} does not serve {render} ({got} for {url}); it must serve local "
                f"files below labeling.document_root={self.document_root}: restart it with "
                f"LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and --document-root {self.document_root}"
            )

    def poll(self, project: int, r: int, picks: list[str], validation: list[str]) -> list[Annotation]:
        """The labels so far of the round's picks and of `validation`; with labeling.wait, once the picks (and,
        with split.require_val, the validation images) are all in, or labeling.timeout_s has passed."""
        deadline = time.monotonic() + float(self.cfg.timeout_s) if self.cfg.timeout_s else None
        wanted = set(validation)
        quiet = not self.cfg.wait
        with (
            progress(total=len(picks), desc=f"round {r}: labeled in Label Studio", unit="img", disable=quiet) as bar,
            progress(total=len(validation), desc="validation: labeled", unit="img", disable=quiet or not wanted) as v,
        ):
            while True:
                rows = self.client.export_min(project)
                mine = [rec for rec in rows if rec.get("round") == r and rec.get("kind") != VALIDATION]
                held_out = [rec for rec in rows if rec.get("kind") == VALIDATION and rec.get("file_name") in wanted]
                where = f"Label Studio project {self.campaign!r}"
                labels = one_vote_each(parse(flatten(mine, where), picks, self.classes, self.campaign))
                val = one_vote_each(parse(flatten(held_out, where), validation, self.classes, self.campaign))
                n_labels, n_val = len({a.file for a in labels}), len({a.file for a in val})
                bar.update(n_labels - bar.n)
                v.update(n_val - v.n)
                done = n_labels == len(picks) and (n_val == len(validation) or not self.require_val)
                done = done and not self.short_of_overlap(project, r)
                if not self.cfg.wait or done or (deadline and time.monotonic() > deadline):
                    return [*labels, *val]
                time.sleep(float(self.cfg.poll_s))


def task_key(data: dict[str, Any]) -> tuple[Any, Any]:
    """A task's identity in the project: an image once per round, a validation image once per campaign."""
    if data.get("kind") == VALIDATION:
        return data.get("file_name"), VALIDATION
    return data.get("file_name"), data.get("round")
