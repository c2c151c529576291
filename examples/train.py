"""A tiny stand-in for a training script: reads its YAML config, writes a fake checkpoint."""

import argparse
import json
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

with open(args.config) as fh:
    lines = dict(line.split(": ", 1) for line in fh.read().splitlines() if ": " in line)
lr, epochs = float(lines["lr"]), int(lines["epochs"])
time.sleep(0.05)
loss = round(1.0 / (1 + epochs * lr * 1000), 4)
with open(os.path.join(args.out, "model.json"), "w") as fh:
    json.dump({"lr": lr, "epochs": epochs, "loss": loss}, fh)
print(f"trained lr={lr} epochs={epochs}: loss {loss}")
