"""`mlops wheels`: resolve for each target, fetch, build pure sdists, write the bundle.

Order of work: the output path and the requirements are checked, uv resolves per target (in
parallel; binary-only, so a version with a wheel for the target wins over a newer sdist), the
index pages of every pin are read (in parallel), a pure plan says which file each target gets,
files are downloaded into the cache (in parallel, hash-checked), and the bundle is written to
a staging folder beside the destination that is renamed into place only when everything,
including the optional `--check-install`, succeeded.
"""

from __future__ import annotations

import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mlops_cli import files as floor
from mlops_cli.errors import OperationFailed, UsageError
from mlops_cli.output import info, warn
from mlops_cli.wheels.targets import Target


@dataclass
class BundleRequest:
    requirements: list[str]
    requirement_files: list[Path]
    targets: list[Target]
    index_urls: list[str]
    out: Path | None = None
    sdist_policy: str = "build"  # build | refuse
    archive: str = "dir"  # dir | tar.gz
    check_install: bool = False
    show_progress: bool = False
    chatty: bool = False  # phase lines on stderr
    cache_root: Path | None = None
    workers: int = 8

    @property
    def first_names(self) -> list[str]:
        """Names on the command line: their pages are fetched before uv even starts."""
        from packaging.requirements import Requirement

        return [Requirement(r).name for r in self.requirements]


def default_out_name(requirements: list[str], requirement_files: list[Path] = ()) -> str:
    """swanlab==0.5.7 -> swanlab-0.5.7-bundle; only -r ml.txt -> ml-bundle."""
    from packaging.requirements import Requirement

    if not requirements:
        return f"{Path(requirement_files[0]).stem}-bundle" if requirement_files else "requirements-bundle"
    first = Requirement(requirements[0])
    pins = [s.version for s in first.specifier if s.operator in ("==", "===")]
    name = f"{first.name}-{pins[0]}-bundle" if pins else f"{first.name}-bundle"
    return name if len(name) <= 120 else f"{name[:100]}-bundle"  # a file name has 255 bytes at most


def _read_requirement_files(paths: list[Path]) -> dict[str, set[str]]:
    """Check the -r files (readable, no index options, no URLs); their --hash pins by name."""
    if not paths:
        return {}
    from mlops_cli.wheels.reqfile import scan_files

    return scan_files(paths)


def _speculate(req: BundleRequest, pages, downloader):
    """While uv resolves: fetch the page of each package it names and start downloading the
    file each target would get of each version it considers or selects. Only a head start:
    the final plan decides what is used, and every file is still checked against its hash."""
    import threading

    from packaging.utils import canonicalize_name

    from mlops_cli.wheels.choose import choose_file
    from mlops_cli.wheels.download import Job

    first_version: dict[str, str] = {}
    handled: set[tuple[str, str]] = set()
    lock = threading.Lock()

    def page_ready(future, name: str, version: str) -> None:
        try:
            files = pages.files(name, version)  # the page is here: no wait
            for t in req.targets:
                c = choose_file(files, name, version, t.tags(), t.markers()["python_full_version"])
                if c.file is not None and not c.needs_build:
                    downloader.submit(Job(c.file.filename, c.file.url, c.file.sha256, c.file.size, c.file.hashes))
        except Exception:  # noqa: BLE001 - a failed guess costs nothing; the real pass reports
            pass

    def on_hint(hint) -> None:
        name = canonicalize_name(hint.name)
        future = pages.want(name)
        if hint.version is None:
            return
        with lock:
            if (name, hint.version) in handled:
                return
            # A second version considered (not selected) means uv is backtracking over this
            # project: wait for its pick rather than download every candidate.
            if not hint.selected and first_version.setdefault(name, hint.version) != hint.version:
                return
            handled.add((name, hint.version))
        future.add_done_callback(lambda f: page_ready(f, name, hint.version))

    return on_hint


MAX_EXCLUSION_ROUNDS = 6  # uv runs added at most for versions that have no wheel for the target


def _exclude_unusable(target: Target, pins, warnings, run, scratch: Path | None, pages):
    """Pins whose every release has a file for the target: versions that have none are excluded
    and uv asked again (pip's backtracking over a platform it cannot install), a few times."""
    if scratch is None:
        return pins, warnings
    import hashlib

    from mlops_cli.wheels.exclude import exclusions

    def files_of(name: str, version: str | None):
        return None if pages.failure(name) is not None else pages.files(name, version)

    excluded: list[str] = []
    tag = hashlib.sha256(target.name.encode()).hexdigest()[:12]
    for round_ in range(MAX_EXCLUSION_ROUNDS):
        more = [e for e in exclusions(target, pins, files_of) if e not in excluded]
        if not more:
            break
        excluded += more
        constraints = scratch / f"exclude-{tag}-{round_}.txt"
        floor.write_new(constraints, "\n".join(excluded) + "\n", what="resolver constraints")
        pins, warnings = run(constraints)
    return pins, warnings


def _resolve_target(
    req: BundleRequest,
    target: Target,
    inputs: list[Path],
    cache_root: Path,
    pages,
    on_hint,
    on_start=None,
    scratch: Path | None = None,
):
    pins, warnings, only_binary = _resolve_binary_first(req, target, inputs, cache_root, pages, on_hint, on_start)

    def again(constraints: Path):
        from mlops_cli.wheels.resolve import resolve

        return resolve(
            target,
            inputs,
            req.index_urls,
            cache_root / "uv",
            on_hint=on_hint,
            only_binary=only_binary,
            constraints=constraints,
        )

    return _exclude_unusable(target, pins, warnings, again, scratch, pages)


def _resolve_binary_first(
    req: BundleRequest, target: Target, inputs: list[Path], cache_root: Path, pages, on_hint, on_start=None
):
    """Pins for one target, binary-only: every package gets a version with a wheel for the
    target; only projects that ship no wheel at all (in any release) may come as an sdist.

    One uv run does it when every package has wheels (`--only-binary :all:`). Otherwise uv
    resolves once without the rule to learn the closure, and again with `--only-binary NAME` for
    every package in it that ships wheels somewhere (numpy and pandas for a manylinux2014 box
    get their last versions with such wheels instead of a newer sdist built on this host)."""
    from mlops_cli.wheels.index import ships_wheels
    from mlops_cli.wheels.resolve import resolve, stopping

    def run(only_binary):
        return resolve(
            target,
            inputs,
            req.index_urls,
            cache_root / "uv",
            on_hint=on_hint,
            only_binary=only_binary,
            on_start=on_start,
        )

    try:
        return (*run([":all:"]), [":all:"])
    except OperationFailed:
        if stopping() or any(isinstance(pages.failure(n), OperationFailed) for n in req.first_names):
            raise  # interrupted, or the index itself failed: a second uv would only wait again
        # some package has no wheel for the target: find which may be built
    pins, warnings = run(None)
    exempt: set[str] = set()
    for _ in range(3):
        names = {p.name.lower() for p in pins}
        exempt |= {n for n in names if not ships_wheels(pages.want(n).result())}
        binary = sorted(names - exempt)
        pins, warnings = run(binary or [":none:"])
        if {p.name.lower() for p in pins} <= names:
            break
    return pins, warnings, binary or [":none:"]


def _resolve_all(
    req: BundleRequest, inputs: list[Path], cache_root: Path, pages, on_hint, on_start=None, scratch: Path | None = None
) -> tuple[dict, list[str]]:
    from mlops_cli.wheels.resolve import stop_running, uv_binary

    uv_binary()  # found here, in one thread, before the targets' threads need it
    with ThreadPoolExecutor(max_workers=min(4, len(req.targets))) as pool:
        futures = {
            t.name: pool.submit(_resolve_target, req, t, inputs, cache_root, pages, on_hint, on_start, scratch)
            for t in req.targets
        }
        try:
            results = {name: f.result() for name, f in futures.items()}
        except (KeyboardInterrupt, SystemExit):
            stop_running()  # else the pool would wait for uv before the temporary folder is removed
            raise
        except OperationFailed:
            # An unreachable index, or one listing malformed hashes, explains a failed resolution
            # better than uv's retries do.
            from mlops_cli.wheels.index import parse_page

            for name in req.first_names:
                failure = pages.failure(name)
                if isinstance(failure, OperationFailed):
                    raise failure from None
                bad = [f.hash_problem for f in parse_page(pages.want(name).result()) if f.hash_problem]
                if bad:
                    raise OperationFailed(bad[0], hint="the index is broken or hostile; nothing was written") from None
            raise
    warnings = sorted({w for _, ws in results.values() for w in ws})
    return {name: pins for name, (pins, _) in results.items()}, warnings


def _refuse_empty(req: BundleRequest, pins: dict) -> None:
    """A requirement whose marker is false for a target gives that target nothing to install:
    say so, and build no bundle that installs nothing (exit 2)."""
    empty = [t.name for t in req.targets if not pins.get(t.name)]
    if not empty:
        return
    for name in empty:
        warn(f"target {name} gets no packages: every requirement's environment marker is false there")
    raise UsageError(
        f"nothing to bundle for target {', '.join(empty)}: the requirements' markers exclude it",
        hint="check the markers (python_version, sys_platform, platform_machine) against the target, "
        "or leave that target out",
    )


def _fetch_pages(pages, pins: dict) -> dict:
    """name -> files of the pinned version(s); most pages were prefetched while uv worked."""
    from packaging.utils import canonicalize_name

    versions: dict[str, set[str]] = {}
    for target_pins in pins.values():
        for p in target_pins:
            versions.setdefault(canonicalize_name(p.name), set()).add(p.version)
    for name in versions:
        pages.want(name)
    return {name: pages.files(name, next(iter(vs)) if len(vs) == 1 else None) for name, vs in versions.items()}


def build_bundle(req: BundleRequest):
    """Write the bundle; see the module docstring for the order of work."""
    import gc

    # Index pages are large JSON documents; Python's cyclic collector would rescan the
    # growing heap again and again while they are decoded (~0.1-0.2 s here). Nothing in this
    # short-lived command builds reference cycles worth collecting.
    gc.disable()
    try:
        return _build_bundle(req)
    finally:
        gc.freeze()  # ... and the interpreter's exit need not walk these objects either
        gc.enable()


def _output_paths(req: BundleRequest) -> tuple[Path, str]:
    out = Path(req.out or default_out_name(req.requirements, req.requirement_files)).absolute()
    final = out.with_name(out.name + ".tar.gz") if req.archive == "tar.gz" and not out.name.endswith(".tar.gz") else out
    name = final.name[: -len(".tar.gz")] if final.name.endswith(".tar.gz") else final.name
    return final, name


def _build_bundle(req: BundleRequest):
    from mlops_cli.wheels import publish

    started = time.perf_counter()
    final, name = _output_paths(req)
    publish.check_output(final, req.archive)  # before any work: never someone else's data
    hash_pins = _read_requirement_files(req.requirement_files)
    with tempfile.TemporaryDirectory(prefix="mlops-wheels-") as scratch:
        with floor.staging_dir(final, what="bundle") as stage:
            result = _build_into(req, stage, Path(scratch), final, name, hash_pins, started)
            if req.archive == "tar.gz":
                from mlops_cli.wheels import layout
                from mlops_cli.wheels.manifest import archive_epoch

                publish.check_output(final, req.archive)  # again: it may have appeared meanwhile
                with floor.atomic_writer(final, what="bundle archive") as fh:
                    layout.write_archive(stage, fh, name, archive_epoch())
            else:
                floor.publish_dir(stage, final, may_replace=publish.folder_reason, what="bundle")
    result.phases["build_and_write"] = time.perf_counter() - started - sum(result.phases.values())
    result.seconds = time.perf_counter() - started
    return result


def _build_into(req: BundleRequest, stage: Path, scratch: Path, final: Path, name: str, hash_pins, started: float):
    from mlops_cli.wheels import layout
    from mlops_cli.wheels.build import build_pure_wheel
    from mlops_cli.wheels.download import Cache, Downloader, Job, default_cache_root
    from mlops_cli.wheels.index import PagePrefetcher
    from mlops_cli.wheels.manifest import describe_bundle
    from mlops_cli.wheels.plan import make_plan
    from mlops_cli.wheels.result import BundleResult

    cache_root = Path(req.cache_root or default_cache_root())
    pages = PagePrefetcher(req.index_urls, req.workers)
    downloader = Downloader(pages.session, Cache(cache_root), req.workers)
    try:
        inputs = list(req.requirement_files)
        if req.requirements:
            top = scratch / "requirements.in"
            floor.write_new(top, "\n".join(req.requirements) + "\n", what="resolver input")
            inputs.insert(0, top)
        phases = {"setup": time.perf_counter() - started}
        first_names, once = req.first_names, threading.Lock()

        def uv_started() -> None:
            # Only once the first uv has begun resolving: its start (an interpreter query) is
            # quicker without this process importing an HTTP stack (and rich, for the line
            # below) on the same CPUs meanwhile.
            if not once.acquire(blocking=False):
                return
            for first in first_names:
                pages.want(first)
            if req.chatty:
                info(f"resolving for {', '.join(t.name for t in req.targets)} with uv ...")

        pins, uv_warnings = _resolve_all(
            req, inputs, cache_root, pages, _speculate(req, pages, downloader), uv_started, scratch
        )
        phases["resolve"] = time.perf_counter() - started - sum(phases.values())
        _refuse_empty(req, pins)
        plan = make_plan(req.targets, pins, _fetch_pages(pages, pins))
        if plan.problems:
            raise OperationFailed(
                "; ".join(plan.problems), hint="pick another version, or leave that target out of this bundle"
            )
        sdists = plan.sdists()
        if sdists and req.sdist_policy == "refuse":
            names = ", ".join(c.file.filename for c in sdists)
            raise OperationFailed(
                f"sdist-only dependencies (no wheel for the target): {names}",
                hint="--sdist build builds pure-Python ones into py3-none-any wheels on this host",
            )
        # uv's own warnings (e.g. "does not have an extra named ..."), less the yanked ones we word better
        warnings = plan.yanked + plan.untagged + [w for w in uv_warnings if not (plan.yanked and "yanked" in w)]
        for note in warnings:
            warn(note)
        files = plan.unique_files()
        jobs = [Job(f.filename, f.url, f.sha256, f.size, f.hashes) for f in files]
        if req.chatty:
            info(f"fetching {len(jobs)} files ...")
        fetched = {f.filename: f for f in downloader.fetch_all(jobs, req.show_progress)}
        unhashed = sorted(f.filename for f in fetched.values() if f.checked_with is None)
        if unhashed:
            note = (
                f"the index gave no sha256 for {len(unhashed)} file(s) ({', '.join(unhashed[:3])}"
                f"{', ...' if len(unhashed) > 3 else ''}): their hashes were taken from the download itself"
            )
            warn(note)
            warnings.append(note)
        _check_hash_pins(hash_pins, plan, fetched)
        phases["fetch_after_resolve"] = time.perf_counter() - started - sum(phases.values())
        bundle_files = _bundle_files(req, plan, files, fetched, cache_root, build_pure_wheel)
        manifest, texts, targets_json = describe_bundle(req, bundle_files)
        layout.write_bundle_dir(
            stage, list(bundle_files.values()), texts, manifest, layout.readme_text(name, targets_json)
        )
        if req.check_install:
            from mlops_cli.wheels.checkinstall import check_install

            check_install(stage, manifest, req.requirements, req.targets)
    finally:
        pages.close()
        downloader.close()
    downloaded = sum(f.downloaded_bytes for f in fetched.values())
    hits = sum(1 for f in fetched.values() if f.from_cache)
    return BundleResult(
        bundle=final,
        archive=req.archive,
        targets=targets_json,
        files=list(bundle_files.values()),
        downloaded_bytes=downloaded,
        cache_hits=hits,
        seconds=0.0,
        phases=phases,
        warnings=warnings,
    )


def _check_hash_pins(hash_pins: dict, plan, fetched: dict) -> None:
    """A -r file's --hash pins hold, as in pip's hash-checking mode: a file none allows is fatal."""
    from mlops_cli.wheels.reqfile import hash_mismatches

    chosen = {
        (c.name, c.file.filename, fetched[c.file.filename].sha256, fetched[c.file.filename].path)
        for cs in plan.per_target.values()
        for c in cs
        if c.file is not None
    }
    problems = hash_mismatches(hash_pins, sorted(chosen))
    if problems:
        raise OperationFailed(
            "; ".join(problems),
            hint="the index serves other files than the requirements file pins: "
            "check the index, or regenerate the hashes",
        )


def _bundle_files(req, plan, files, fetched, cache_root, build_pure_wheel) -> dict:
    """filename -> BundleFile, sdists replaced by the wheels built from them."""
    from mlops_cli.wheels.download import sha256_file
    from mlops_cli.wheels.layout import BundleFile

    by_sdist: dict[str, BundleFile] = {}
    out: dict[str, BundleFile] = {}
    for f in files:
        got = fetched[f.filename]
        choice = next(c for cs in plan.per_target.values() for c in cs if c.file and c.file.filename == f.filename)
        if choice.needs_build:
            if req.chatty:
                info(f"building {f.filename} (sdist only) into a wheel ...")
            wheel = build_pure_wheel(got.path, f.filename, got.sha256, cache_root, req.index_urls)
            bf = BundleFile(
                choice.name,
                choice.version,
                wheel.name,
                sha256_file(wheel),
                wheel.stat().st_size,
                None,
                f.index,
                wheel,
                built_from_sdist=True,
                sdist={"filename": f.filename, "sha256": got.sha256, "source_url": f.url},
            )
            by_sdist[f.filename] = bf
        else:
            bf = BundleFile(
                choice.name,
                choice.version,
                f.filename,
                got.sha256,
                got.size,
                f.url,
                f.index,
                got.path,
                yanked=f.yanked,
                yanked_reason=f.yanked_reason,
            )
        out[bf.filename] = bf
    for target_name, choices in plan.per_target.items():
        for c in choices:
            key = by_sdist[c.file.filename].filename if c.file.filename in by_sdist else c.file.filename
            if target_name not in out[key].targets:
                out[key].targets.append(target_name)
    return out
