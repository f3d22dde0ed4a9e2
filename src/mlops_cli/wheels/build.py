"""Turn a pure-Python sdist-only dependency into a `py3-none-any` wheel, on this host.

The build runs through `uv build --wheel` with the same isolation as resolution. The result
is accepted only when its tags say it is pure (`*-none-any`): a wheel with compiled code built
here would carry this host's binaries to a target that may differ (uv #16019), so it is
refused with a message that names the package. Built wheels are cached by the sdist's hash.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from mlops_cli import files, proc
from mlops_cli.errors import MlopsError, OperationFailed
from mlops_cli.wheels.resolve import clean_env, index_args, summarize_uv_error, uv_binary


def is_pure_wheel(filename: str) -> bool:
    from packaging.utils import parse_wheel_filename

    _n, _v, _b, tags = parse_wheel_filename(filename)
    return all(t.abi == "none" and t.platform == "any" for t in tags)


def build_pure_wheel(
    sdist: Path, sdist_name: str, sdist_sha256: str, cache_root: Path, index_urls: list[str], timeout: float = 600
) -> Path:
    """The built wheel (in the cache); raises naming the package when it is not pure."""
    done = cache_root / "built" / sdist_sha256
    existing = sorted(done.glob("*.whl")) if done.is_dir() else []
    if existing:
        return existing[0]
    from mlops_cli.wheels.index import safe_filename

    with tempfile.TemporaryDirectory(prefix="mlops-sdist-") as work:
        src = Path(work) / sdist_name
        files.copy_new(sdist, src, what="sdist copy")
        out = Path(work) / "out"
        argv = [
            uv_binary(),
            "build",
            "--wheel",
            "--out-dir",
            str(out),
            str(src),
            "--python",
            sys.executable,
            "--no-python-downloads",
            "--no-config",
            "--cache-dir",
            str(cache_root / "uv"),
            *index_args(index_urls),
        ]
        result = proc.run(argv, env=clean_env(), timeout=timeout)
        if result.timed_out:
            raise OperationFailed(f"building {sdist_name} took longer than {int(timeout)} s")
        wheels = sorted(out.glob("*.whl"))
        if result.rc != 0 or not wheels:
            raise OperationFailed(
                f"cannot build a wheel from the sdist-only dependency {sdist_name}: {summarize_uv_error(result.stderr)}"
            )
        wheel = wheels[0]
        if not safe_filename(wheel.name) or not wheel.name.endswith(".whl"):
            raise OperationFailed(f"building {sdist_name} gave a file that is not a wheel")
        if not is_pure_wheel(wheel.name):
            raise OperationFailed(
                f"{sdist_name} has no wheel for the target and is not pure Python (building it here gave {wheel.name})",
                hint="pick a version that ships wheels for the target, or build that wheel on a "
                "machine like the target and serve it from an --extra-index-url",
            )
        done.mkdir(parents=True, exist_ok=True)
        final = done / wheel.name
        try:
            files.copy_new(wheel, final, what="built wheel")
        except MlopsError:
            if not final.is_file():  # else another mlops process built the same sdist meanwhile
                raise
        return final
