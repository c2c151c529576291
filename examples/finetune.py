"""A tiny stand-in for fine-tuning: reads the base model, writes a fine-tuned one."""

import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--base", required=True)
parser.add_argument("--dataset", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

with open(os.path.join(args.base, "model.json")) as fh:
    base = json.load(fh)
tuned = {**base, "dataset": args.dataset, "loss": round(base["loss"] * 0.9, 4)}
with open(os.path.join(args.out, "model.json"), "w") as fh:
    json.dump(tuned, fh)
print(f"fine-tuned on {args.dataset}: loss {tuned['loss']}")
