"""Score `mlops patch` on real upstream fixes (tests/fixtures/patch/real_fixes.json).

For each case: a venv with the release the fix was not yet in (`pip install --no-deps` of its
PyPI wheel), then the real command line: `extract`, the fix written into the work copy, `diff`,
`apply --yes`, `status`, `revert`; then `port` to each later release (`--python` of a venv with
that release, `--base` the old wheel, as the tests do). Recorded per later release: the outcome
(`ported` | `upstream-fixed` | `conflict`, or `unchanged`, which counts as a clean port) against
the expected one, whether a ported patch applies there (`apply`, `status` applied, `revert`) and
whether the patched module still imports (`python -c 'import x.y'`; without the package's own
dependencies, torch above all, the import fails before and after: "inconclusive", and the
`py_compile` check of `apply` is what remains).

Usage:
    python benchmarks/patch_real.py [--cases FILE] [--only ID] [--json OUT.json]

Wheels are cached in $MLOPS_BENCH_CACHE (default ~/.cache/mlops-bench/wheels). Prints a Markdown
table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "fixtures" / "patch" / "real_fixes.json"
CLEAN = {"ported", "unchanged"}


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def wheel(cache: Path, package: str, version: str) -> Path:
    found = sorted(cache.glob(f"{package}-{version}-*.whl"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--index-url",
                "https://pypi.org/simple",
                f"{package}=={version}",
                "-d",
                str(cache),
            ],
            check=True,
            env=clean_env(),
            timeout=600,
        )
        found = sorted(cache.glob(f"{package}-{version}-*.whl"))
    return found[0]


class Venvs:
    def __init__(self, root: Path, cache: Path):
        self.root, self.cache, self.made = root, cache, {}

    def python(self, package: str, version: str) -> Path:
        key = (package, version)
        if key not in self.made:
            folder = self.root / f"{package}-{version}"
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
            py = folder / "bin" / "python"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "--python",
                    str(py),
                    "install",
                    "-q",
                    "--no-deps",
                    "--no-index",
                    "--ignore-requires-python",
                    str(wheel(self.cache, package, version)),
                ],
                check=True,
                env=clean_env(),
                timeout=600,
            )
            self.made[key] = py
        return self.made[key]


def mlops(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlops_cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


def module_of(path: str) -> str:
    return path[:-3].replace("/", ".").removesuffix(".__init__")


def import_state(py: Path, paths: list[str]) -> dict[str, str]:
    out = {}
    for path in paths:
        if path.endswith(".py"):
            proc = subprocess.run(
                [str(py), "-c", f"import {module_of(path)}"], capture_output=True, text=True, timeout=300
            )
            last = (proc.stderr.strip().splitlines() or [""])[-1]
            out[path] = "ok" if proc.returncode == 0 else last[:160]
    return out


def import_verdict(before: dict[str, str], after: dict[str, str]) -> str:
    """ok | inconclusive (it did not import unpatched either, for the same reason) | broken."""
    verdicts = []
    for path, state in after.items():
        if state == "ok":
            verdicts.append("ok")
        elif before.get(path) == state:
            verdicts.append("inconclusive")
        else:
            verdicts.append("broken")
    if "broken" in verdicts:
        return "broken"
    return "inconclusive" if "inconclusive" in verdicts else "ok"


def edit(text: str, edits: list[dict]) -> str:
    lines = text.splitlines(keepends=True)
    for e in sorted(edits, key=lambda e: e["line"], reverse=True):
        old = e["old"].splitlines(keepends=True)
        start = e["line"] - 1
        if lines[start : start + len(old)] != old:
            raise SystemExit(f"fixture edit at line {e['line']} does not match the release's file")
        lines[start : start + len(old)] = e["new"].splitlines(keepends=True)
    return "".join(lines)


def apply_cycle(patch: Path, py: Path, paths: list[str], env: dict) -> dict:
    """apply --yes, status (applied), import, revert --yes, status (not applied)."""
    before = import_state(py, paths)
    r = mlops("patch", "apply", str(patch), "--python", str(py), "--yes", "--json", env=env)
    res = {"apply": r.returncode == 0, "apply_problem": None if r.returncode == 0 else r.stderr.strip()[-300:]}
    r = mlops("patch", "status", str(patch), "--python", str(py), "--json", env=env)
    res["status_applied"] = r.returncode == 0 and json.loads(r.stdout).get("result") == "applied"
    res["import"] = import_verdict(before, import_state(py, paths)) if res["apply"] else "not-applied"
    r = mlops("patch", "revert", str(patch), "--python", str(py), "--yes", "--json", env=env)
    res["revert"] = r.returncode == 0
    r = mlops("patch", "status", str(patch), "--python", str(py), "--json", env=env)
    res["status_after_revert"] = json.loads(r.stdout).get("result") if r.stdout.strip() else None
    return res


def run_case(case: dict, venvs: Venvs, cache: Path, tmp: Path, env: dict) -> dict:
    pkg, old = case["package"], case["patched_version"]
    paths = [f["path"] for f in case["files"]]
    py = venvs.python(pkg, old)
    work, patch = tmp / "work", tmp / f"{case['id']}.patch"
    r = mlops("patch", "extract", "--python", str(py), *paths, "-o", str(work), "--json", env=env)
    out = {"id": case["id"], "extract": r.returncode == 0, "later": []}
    if r.returncode != 0:
        out["problem"] = r.stderr.strip()[-300:]
        return out
    for f in case["files"]:
        target = work / f["path"]
        target.write_text(edit(target.read_text(), f["edits"]))
    r = mlops("patch", "diff", str(work), "-o", str(patch), "--json", env=env)
    out["diff"] = r.returncode == 0
    if r.returncode != 0:
        out["problem"] = r.stderr.strip()[-300:]
        return out
    out["local"] = apply_cycle(patch, py, paths, env)
    base = wheel(cache, pkg, old)
    for later in case["later"]:
        new_py = venvs.python(pkg, later["version"])
        ported = tmp / f"{case['id']}-{later['version']}.patch"
        r = mlops(
            "patch",
            "port",
            str(patch),
            "--python",
            str(new_py),
            "--base",
            str(base),
            "-o",
            str(ported),
            "--work",
            str(tmp / f"{case['id']}-{later['version']}.work"),
            "--json",
            env=env,
        )
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            doc = {}
        result = doc.get("result") or f"error (exit {r.returncode}): {r.stderr.strip()[-200:]}"
        row = {
            "version": later["version"],
            "expected": later["expected"],
            "result": result,
            "exit": r.returncode,
            "files": [
                {"path": f.get("path"), "outcome": f.get("outcome"), "reason": f.get("reason")}
                for f in doc.get("files", [])
            ],
        }
        row["match"] = result == later["expected"] or (later["expected"] == "ported" and result in CLEAN)
        # Unsafe: a patch written where upstream already has the fix or a person must choose.
        row["unsafe"] = result in CLEAN and later["expected"] != "ported"
        if result == "ported":
            row["cycle"] = apply_cycle(ported, new_py, paths, env)
        elif result == "unchanged":
            row["cycle"] = apply_cycle(patch, new_py, paths, env)
        out["later"].append(row)
    return out


def cycle_ok(c: dict | None) -> bool:
    return (
        bool(c)
        and c["apply"]
        and c["status_applied"]
        and c["revert"]
        and c["import"] != "broken"
        and c["status_after_revert"] == "not-applied"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=Path, default=CASES)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    doc = json.loads(args.cases.read_text())
    cache = Path(os.environ.get("MLOPS_BENCH_CACHE", Path.home() / ".cache" / "mlops-bench" / "wheels"))
    cache.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="mlops-patch-real-") as tmpdir:
        tmp = Path(tmpdir)
        env = clean_env(
            MLOPS_CACHE_DIR=str(tmp / "cache"), MLOPS_STATE_DIR=str(tmp / "state"), PYTHONPATH=str(ROOT / "src")
        )
        venvs = Venvs(tmp / "venvs", cache)
        for case in doc["cases"]:
            if args.only and case["id"] not in args.only:
                continue
            case_tmp = tmp / case["id"]
            case_tmp.mkdir()
            res = run_case(case, venvs, cache, case_tmp, env)
            results.append(res)
            print(
                f"{case['id']}: local {'ok' if cycle_ok(res.get('local')) else 'FAILED'}; "
                + ", ".join(
                    f"{r['version']} {r['result']}{'' if r['match'] else ' (expected ' + r['expected'] + ')'}"
                    for r in res["later"]
                ),
                file=sys.stderr,
                flush=True,
            )
    rows = [r for res in results for r in res["later"]]
    summary = {
        "cases": len(results),
        "workflow_ok": sum(1 for res in results if cycle_ok(res.get("local"))),
        "ports": len(rows),
        "outcome_match": sum(r["match"] for r in rows),
        "unsafe": sum(r["unsafe"] for r in rows),
        "ported_cycle_ok": sum(1 for r in rows if r["result"] in CLEAN and cycle_ok(r.get("cycle"))),
        "ported": sum(1 for r in rows if r["result"] in CLEAN),
        "by_expected": {},
    }
    for exp in ("ported", "upstream-fixed", "conflict"):
        sel = [r for r in rows if r["expected"] == exp]
        summary["by_expected"][exp] = f"{sum(r['match'] for r in sel)}/{len(sel)}"
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\npatch_real at {commit}, {when}: {summary['cases']} cases, {summary['ports']} ports")
    print("| case | local workflow | port outcomes (result / expected) |")
    print("|---|---|---|")
    for res in results:
        cells = "; ".join(
            f"{r['version']}: {r['result']}"
            + ("" if r["match"] else f" **/ {r['expected']}**")
            + (" (ported patch applies)" if r["result"] in CLEAN and cycle_ok(r.get("cycle")) else "")
            for r in res["later"]
        )
        print(f"| {res['id']} | {'ok' if cycle_ok(res.get('local')) else 'FAILED'} | {cells} |")
    print(
        f"\noutcome matches {summary['outcome_match']}/{summary['ports']} "
        f"(ported {summary['by_expected']['ported']}, upstream-fixed {summary['by_expected']['upstream-fixed']}, "
        f"conflict {summary['by_expected']['conflict']}); unsafe {summary['unsafe']}; "
        f"local workflow {summary['workflow_ok']}/{summary['cases']}; "
        f"ported patches that apply+revert {summary['ported_cycle_ok']}/{summary['ported']}"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"commit": commit, "when": when, "summary": summary, "results": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
