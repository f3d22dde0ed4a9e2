"""Time the `mlops patch` image workflow against the hand recipe it replaces.

Usage (a Docker engine must be up, e.g. `. .ci/docker-up.sh && docker_up`; the image is the
stand-in the test suite builds, `mlops-test/vllm-openai:tf5.20.2-*`, or any image with
transformers 5.20.2):

    python benchmarks/patch_image_workflow.py [--image IMG] [--runs 5]

Steps timed (wall clock, each a fresh process, like a user at a terminal):
  mlops: extract, diff, apply --dry-run, apply (build of the derived image), status.
  by hand (research vllm-patch.md §1.1): probe with `docker run python3 -c`, `docker create` +
  `docker cp` + `docker rm`, GNU `patch -p1 --forward`, `docker build` (FROM + COPY).
Prints a Markdown table of medians (seconds) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

MODELING = "transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py"
SITE = "/usr/local/lib/python3.12/dist-packages"
OLD = "                    current_pos += max(grid_thw[1], grid_thw[2]) // spatial_merge_size\n"
NEW = "                    current_pos = int(vision_position_ids.max()) + 1\n"


def timed(argv: list[str], **kw) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, **kw)
    return time.perf_counter() - start


def find_image() -> str:
    out = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "mlops-test/vllm-openai"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    tags = [t for t in out if ":tf5.20.2-" in t]
    if not tags:
        sys.exit("no stand-in image; run the container tests once (pytest -m container) or pass --image")
    return tags[0]


def one_run(image: str, root: Path, results: dict[str, list[float]]) -> None:
    mlops = [sys.executable, "-m", "mlops_cli", "patch"]
    work, patch, tag = root / "work", root / "x.patch", "mlops-bench/derived:1"
    results["mlops extract"].append(timed([*mlops, "extract", image, MODELING, "-o", str(work)]))
    edited = work / MODELING
    edited.write_text(edited.read_text().replace(OLD, NEW))
    results["mlops diff"].append(timed([*mlops, "diff", str(work), "-o", str(patch)]))
    results["mlops apply --dry-run"].append(timed([*mlops, "apply", str(patch), "--image", image, "--dry-run"]))
    results["mlops apply (build)"].append(timed([*mlops, "apply", str(patch), "--image", image, "--tag", tag, "--yes"]))
    results["mlops status (derived)"].append(timed([*mlops, "status", str(patch), "--image", tag]))
    subprocess.run(["docker", "rmi", tag], capture_output=True)

    # The hand recipe, for the same result.
    hand = root / "hand"
    hand.mkdir()
    t = timed(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "python3",
            image,
            "-c",
            "import transformers; print(transformers.__file__)",
        ]
    )
    start = time.perf_counter()
    cid = subprocess.run(["docker", "create", image], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["docker", "cp", f"{cid}:{SITE}/{MODELING}", str(hand / "m.py")], check=True, capture_output=True)
    subprocess.run(["docker", "rm", cid], check=True, capture_output=True)
    t_copy = time.perf_counter() - start
    diff = patch.read_text().replace("a/" + MODELING, "a/m.py").replace("b/" + MODELING, "b/m.py")
    t_patch = timed(["patch", "-p1", "--forward", "--fuzz=0", "-d", str(hand)], input=diff.encode())
    (hand / "Dockerfile").write_text(f"FROM {image}\nCOPY m.py {SITE}/{MODELING}\n")
    t_build = timed(["docker", "build", "--network", "none", "-q", "-t", "mlops-bench/hand:1", str(hand)])
    subprocess.run(["docker", "rmi", "mlops-bench/hand:1"], capture_output=True)
    results["hand: probe path"].append(t)
    results["hand: create+cp+rm"].append(t_copy)
    results["hand: GNU patch"].append(t_patch)
    results["hand: docker build"].append(t_build)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not shutil.which("patch"):
        sys.exit("GNU patch is needed for the hand recipe (apt-get install patch)")
    image = args.image or find_image()
    results: dict[str, list[float]] = {}
    keys = [
        "mlops extract",
        "mlops diff",
        "mlops apply --dry-run",
        "mlops apply (build)",
        "mlops status (derived)",
        "hand: probe path",
        "hand: create+cp+rm",
        "hand: GNU patch",
        "hand: docker build",
    ]
    for k in keys:
        results[k] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
            one_run(image, Path(tmp), results)
    server = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"machine: {platform.node()} ({platform.machine()}, {shutil.os.cpu_count()} cores), docker {server}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, image {image}, {args.runs} runs\n"
    )
    print("| step | median s | min s | max s |\n|---|---|---|---|")
    for k in keys:
        v = results[k]
        print(f"| {k} | {statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} |")
    mlops_total = sum(statistics.median(results[k]) for k in keys[:4])
    hand_total = sum(statistics.median(results[k]) for k in keys[5:])
    print(
        f"\nmlops extract+diff+dry-run+apply: {mlops_total:.2f} s; hand recipe: {hand_total:.2f} s; "
        f"ratio {mlops_total / hand_total:.2f}"
    )


if __name__ == "__main__":
    main()
