"""Draw every picture in docs/figures with the project's own code (`make docs`).

Nothing in docs/figures is drawn by hand: each file comes from one function below, which
either calls the engine directly (the computation graphs) or runs one of the examples, the
same scripts a reader runs. Run from anywhere:

    python tools/make_docs.py              # everything
    python tools/make_docs.py --only pe    # just the figures whose step name contains "pe"
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "docs" / "figures"


def run_example(name: str, *args: str) -> None:
    """Run examples/<name> as a reader would, with the repository importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, str(REPO / "examples" / name), *args], check=True, env=env, cwd=REPO)


def positional_encodings() -> None:
    """pe_sinusoidal.png, pe_learned.png, pe_rope.png, pe_alibi.png."""
    run_example("positional_encodings.py", "--out", str(FIGURES))


def sampling() -> None:
    """sampling.png: temperature, top-k and top-p on one distribution."""
    run_example("sampling_distributions.py", "--out", str(FIGURES))


STEPS = {
    "positional encodings (pe)": positional_encodings,
    "sampling": sampling,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="run only the steps whose name contains this text")
    args = parser.parse_args()
    FIGURES.mkdir(parents=True, exist_ok=True)
    for name, step in STEPS.items():
        if args.only and args.only not in name:
            continue
        start = time.perf_counter()
        step()
        print(f"[make docs] {name}: {time.perf_counter() - start:.1f} s")
    for path in sorted(FIGURES.iterdir()):
        print(f"[make docs] {path.relative_to(REPO)}  {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
