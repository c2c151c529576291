"""The HTML report at scale: time to collect and render, and the file's size, for the README's
36-artifact grid and a 10,008-artifact one; optionally the time a headless Chromium takes to
show the big page (tables and plots are drawn by the page's script).

Every artifact is made built on disk (``.done`` and a ``metrics.json``), so no scheduler is
involved: this measures the report itself. In-process; each size is measured ``--reps`` times
after one cold run (the cold run includes compiling the templates).

    python bench/bench_report.py                 # 36 and 10,008 artifacts, ~1 minute
    python bench/bench_report.py --browser       # also load both pages in headless Chromium
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import REPO, WORK, machine, median, table

sys.path.insert(0, str(REPO))

from experiments import Artifact, ArtifactSet, SlurmExecutor, paths  # noqa: E402
from experiments.report import write_report  # noqa: E402
from experiments.report.data import collect  # noqa: E402
from experiments.report.html import render_html  # noqa: E402


@dataclass(frozen=True)
class PretrainedModel(Artifact):
    learning_rate: float
    num_epochs: int

    def get_requirements(self) -> dict[str, object]:
        return {"partition": "gpu", "gpus": "A100:4", "cpus": 8, "time": "24:00:00"}


@dataclass(frozen=True)
class FinetunedModel(Artifact):
    base_model: PretrainedModel
    dataset: str


def grid(root: Path, n_lr: int) -> SlurmExecutor:
    """The README's grid with ``n_lr`` learning rates: 12 × n_lr artifacts, all built."""
    lrs = [round(10 ** -(1 + 4 * i / max(1, n_lr - 1)), 8) for i in range(n_lr)]
    pre = ArtifactSet.from_product(cls=PretrainedModel, params={
        "learning_rate": lrs, "num_epochs": [10, 20, 50, 100]})
    fine = ArtifactSet.join_product(pre, ["squad", "glue"]).map(
        lambda m, d: FinetunedModel(base_model=m, dataset=d))
    ex = SlurmExecutor(project=f"bench-report-{n_lr}", artifact_path=str(root / "out"),
                       code_path=str(root))
    ex.stage("pretrain", pre)
    ex.stage("finetune", fine)
    for i, art in enumerate([*pre, *fine]):
        folder = Path(paths.artifact_dir(ex.artifact_path, art.relpath))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps({"loss": round(1 / (i + 1), 6),
                                                         "eval": {"acc": i % 97 / 97}}))
        (folder / ".done").write_text("{}")
    return ex


def browser_seconds(page: Path) -> tuple[float, float] | None:
    """Seconds from navigation start until the load event (the page's script has drawn tables
    and plots by then), and the seconds that script took."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.set_page_load_timeout(300)
        driver.get(page.as_uri())  # returns after the load event: the script has run
        nav = driver.execute_script("return performance.getEntriesByType('navigation')[0]"
                                    ".loadEventEnd")
        t = driver.execute_script("return window.reportTimings")
        return float(nav) / 1000, (t["tables_ms"] + t["plots_ms"]) / 1000
    finally:
        driver.quit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--browser", action="store_true")
    args = ap.parse_args()
    WORK.mkdir(exist_ok=True)
    os.environ["EXPERIMENTS_HOME"] = tempfile.mkdtemp(dir=WORK, prefix="home-")
    rows = []
    for n_lr in (3, 834):
        root = Path(tempfile.mkdtemp(dir=WORK, prefix="report-"))
        ex = grid(root, n_lr)
        out = root / "report.html"
        cold = write_report(ex.session(), None, out)
        totals, collects, renders = [], [], []
        for _ in range(args.reps):
            start = time.perf_counter()
            data = collect(ex.session(), None)
            mid = time.perf_counter()
            render_html(data)
            collects.append(mid - start)
            renders.append(time.perf_counter() - mid)
            totals.append(write_report(ex.session(), None, out).seconds)
        n = sum(s.total for s in cold.data.stages)
        shown = browser_seconds(out) if args.browser else None
        rows.append([f"{n:,}", f"{cold.seconds:.3f}", f"{median(totals):.3f}",
                     f"{median(collects):.3f}", f"{median(renders):.3f}",
                     f"{cold.size / 1024:,.0f} kB",
                     "-" if shown is None else f"{shown[0]:.2f} ({shown[1]:.2f} script)"])
        shutil.rmtree(root)
    print(machine())
    print(table("The HTML report", ["artifacts", "cold s", "report s (median)", "collect s",
                                    "render s", "size", "Chromium load s"], rows))


if __name__ == "__main__":
    main()
