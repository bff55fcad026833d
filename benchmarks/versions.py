"""The library versions behind the numbers in RESULTS.md, as a markdown table.

    python benchmarks/versions.py

pyproject.toml bounds the libraries that decide the numbers to these minor versions, so that a
fresh install draws what RESULTS.md was measured with. Every results file records them too
(``record.py``, ``versions``; torch's thread count is under ``machine`` there).
"""
import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ["torch", "torchvision", "transformers", "tokenizers", "safetensors", "accelerate", "peft",
            "bitsandbytes", "trl", "open_clip_torch", "xgrammar", "sacrebleu", "numpy", "pillow", "scikit-learn",
            "scipy", "pydantic", "pandas"]


def versions() -> dict[str, str]:
    """Python's version and each of ``PACKAGES``' installed version (or "not installed")."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


if __name__ == "__main__":
    print("| library | version |\n|---|---|")
    for name, v in versions().items():
        print(f"| {name} | {v} |")
