"""The library versions behind the numbers in RESULTS.md, as a markdown table.

    python benchmarks/versions.py

pyproject.toml bounds the libraries that decide the numbers to these minor versions, so that a
fresh install draws what RESULTS.md was measured with.
"""
import platform
from importlib.metadata import PackageNotFoundError, version

import torch

PACKAGES = ["torch", "torchvision", "transformers", "tokenizers", "safetensors", "accelerate", "peft",
            "bitsandbytes", "trl", "open_clip_torch", "xgrammar", "sacrebleu", "numpy", "pillow", "scikit-learn",
            "scipy", "pydantic", "pandas"]


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    found["torch threads"] = str(torch.get_num_threads())
    return found


if __name__ == "__main__":
    print("| library | version |\n|---|---|")
    for name, v in versions().items():
        print(f"| {name} | {v} |")
