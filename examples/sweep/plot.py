"""Plot the sweep's results from ``executor.table(...).to_pandas()`` (needs pandas and
matplotlib: ``pip install 'slurm-experiments[results]' matplotlib``).

    python examples/sweep/plot.py sweep.png
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
from experiment import executor  # noqa: E402  (the experiment file beside this one)


def main(path: str) -> None:
    df = executor.table("sweep").to_pandas()
    built = df[df["state"] == "built"]
    mean = built.groupby(["width", "learning_rate"])["accuracy"].mean().reset_index()
    fig, ax = plt.subplots(figsize=(6, 4))
    for width, rows in mean.groupby("width"):
        ax.plot(rows["learning_rate"], rows["accuracy"], marker="o", label=f"width {width}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("accuracy (mean of seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plotted {len(built)} built artifacts of {len(df)} to {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sweep.png")
