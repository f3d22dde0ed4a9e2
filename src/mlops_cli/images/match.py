"""The work of `mlops images match`, from folders to a published output folder.

list the folders -> decode thumbnails in parallel -> one distance matrix per other folder ->
optimal pairing (and the greedy one, for comparison) -> draw the strips in parallel into a
staging folder beside OUT -> matches.csv -> rename the staging folder to OUT.

Every file is read through the floor (``files.read_input_bytes``) and written through it
(``files.atomic_writer`` inside ``files.staging_dir``); OUT appears whole or not at all, and
an existing OUT is replaced only when it is an earlier output of this command.
"""

from __future__ import annotations

import os
import re
import stat
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlops_cli import files
from mlops_cli.errors import MlopsError, UsageError
from mlops_cli.images import assign, decode
from mlops_cli.images.discover import Folder, image_subfolders, list_folder
from mlops_cli.images.distance import distance_matrix
from mlops_cli.images.layout import strip_layout, strip_names
from mlops_cli.images.result import CSV_HEADER, FolderSummary, MatchResult, Pair, Skipped, Strip
from mlops_cli.interrupts import deferred

MAX_IMAGE_BYTES = 512 * files.MiB
MAX_SIZE = 128
STRIP_NAME = re.compile(r"\d{3,}\.(jpg|png)")


@dataclass(frozen=True)
class Settings:
    metric: str = "mse"
    size: int = 64
    max_distance: float | None = None
    height: int | None = None
    labels: bool = False
    format: str = "jpg"

    def to_json(self) -> dict:
        return {
            "metric": self.metric,
            "size": self.size,
            "max_distance": self.max_distance,
            "height": self.height,
            "labels": self.labels,
            "format": self.format,
        }


@dataclass
class _Image:
    folder: int  # 0: the reference folder
    name: str
    features: decode.Features | None = None


class Progress:
    """Phases with a count; a rich progress bar on a terminal, silent otherwise."""

    def __init__(self, enabled: bool):
        self._bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            from mlops_cli.output import err_console

            self._bar = RichProgress(
                TextColumn("{task.description:<10}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console(),
                transient=True,
            )

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def phase(self, name: str, total: int) -> Callable[[], None]:
        if self._bar is None:
            return lambda: None
        task = self._bar.add_task(name, total=total)
        return lambda: self._bar.advance(task)


def run(ref_dir: str, other_dirs: list[str], out: str, settings: Settings, *, show_progress: bool) -> MatchResult:
    check_settings(settings)
    folders = [list_folder(ref_dir, what="reference folder")] + [list_folder(d, what="folder") for d in other_dirs]
    for i, folder in enumerate(folders):
        if not folder.files:
            raise UsageError(
                f"no image files in {'reference folder' if i == 0 else 'folder'} {files.show_path(folder.path)}",
                hint=_no_images_hint(folder),
            )
    check_output(out, folders)
    # Pillow warns on stderr about odd or huge files; each is handled (or skipped) here instead.
    warnings.filterwarnings("ignore", module=r"PIL\.")
    warnings.filterwarnings("ignore", category=decode.Image.DecompressionBombWarning)
    timings: dict[str, float] = {}
    with files.staging_dir(out, what="output folder") as staging, Progress(show_progress) as progress, _pool() as pool:
        with _timed(timings, "decode"):
            images, skipped = _decode_all(pool, folders, settings, progress)
        with _timed(timings, "match"):
            refs = [im for im in images if im.folder == 0 and im.features is not None]
            summaries, pairings = _pair_all(folders, images, refs, settings, progress)
        with _timed(timings, "stitch"):
            names = strip_names(len(refs), settings.format)
            strips = [
                Strip(name, ref.name, tuple(p[i][0] for p in pairings))
                for i, (name, ref) in enumerate(zip(names, refs))
            ]
            skipped += _write_strips(pool, staging, folders, refs, strips, pairings, settings, progress)
        result = MatchResult(
            reference=folders[0].path,
            reference_images=len(refs),
            reference_ignored=folders[0].ignored,
            folders=tuple(summaries),
            strips=tuple(strips),
            skipped=tuple(skipped),
            settings=settings.to_json(),
            out=out,
            replaced=False,
            timings=timings,
        )
        files.write_atomic(staging / "matches.csv", result.csv_bytes(), what="matches.csv")
        with deferred():
            result.replaced = files.publish_dir(staging, out, may_replace=previous_output_reason, what="output folder")
    return result


def _no_images_hint(folder: Folder) -> str:
    subs = image_subfolders(folder)
    if subs:
        where = ", ".join(f"{files.show_path(folder.join(name))} ({count})" for name, count in subs)
        return f"only its subfolders hold images; give the one with the outputs: {where}"
    return "images are .jpg .jpeg .png .webp .bmp .tif .tiff .gif files directly in the folder"


@contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[phase] = time.perf_counter() - start


def check_settings(settings: Settings) -> None:
    if settings.max_distance is not None and not (settings.max_distance >= 0 and np.isfinite(settings.max_distance)):
        raise UsageError(f"--max-distance must be a number >= 0, not {settings.max_distance}")
    if not 8 <= settings.size <= MAX_SIZE:
        raise UsageError(f"--size must be between 8 and {MAX_SIZE} pixels, not {settings.size}")


def check_output(out: str, folders: list[Folder]) -> None:
    """Refuse OUT before any work: an input folder, a folder holding an input, a symlink, a file,
    or a folder that is not an earlier output of this command (it would be replaced)."""
    real_out = os.path.realpath(out)
    for folder in folders:
        real_in = os.path.realpath(folder.path)
        if real_in == real_out or real_in.startswith(real_out.rstrip(os.sep) + os.sep):
            raise UsageError(
                f"-o {files.show_path(out)} would replace the input folder {files.show_path(folder.path)}",
                hint="write the strips to a new folder",
            )
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"cannot use -o {files.show_path(out)}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(
            f"refusing to replace {files.show_path(out)}: it is a symbolic link",
            hint="give the link's target, or another path",
        )
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(
            f"refusing to replace {files.show_path(out)}: it exists and is not a folder",
            hint="choose another path, or remove it first",
        )
    reason = previous_output_reason(Path(out))
    if reason:
        raise UsageError(
            f"refusing to replace {files.show_path(out)}: {reason}", hint="choose another path, or remove it first"
        )


def previous_output_reason(path: Path) -> str | None:
    """None when ``path`` may be replaced: it is empty, or it holds only strips (NNN.jpg/png)
    and a matches.csv that starts with this command's header."""
    try:
        entries = list(os.scandir(path))
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if not entries:
        return None
    not_ours = "it is not an output of `mlops images match`"
    names = set()
    for entry in entries:
        if not entry.is_file(follow_symlinks=False) or not (
            entry.name == "matches.csv" or STRIP_NAME.fullmatch(entry.name)
        ):
            return f"{not_ours} (it holds {files.show_path(entry.name)})"
        names.add(entry.name)
    if "matches.csv" not in names:
        return f"{not_ours} (no matches.csv)"
    try:
        with files.open_input_stream(path / "matches.csv", what="matches.csv") as fh:
            first = fh.readline(256)
    except (MlopsError, OSError):
        return f"{not_ours} (its matches.csv cannot be read)"
    if first.rstrip(b"\r\n") != ",".join(CSV_HEADER).encode():
        return f"{not_ours} (its matches.csv has another header)"
    return None


# --- decoding -----------------------------------------------------------------------------


def _pool() -> ThreadPoolExecutor:
    # Pillow releases the GIL while it decodes and resizes, so threads use every core.
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return _ShutdownPool(max_workers=max(1, min(16, cores)))


class _ShutdownPool(ThreadPoolExecutor):
    def __exit__(self, *exc) -> None:
        # On Ctrl-C, drop the queued work instead of decoding the rest of the folder first.
        self.shutdown(wait=True, cancel_futures=True)


def _read(path: str) -> bytes:
    try:
        return files.read_input_bytes(path, what="image", max_bytes=MAX_IMAGE_BYTES, regular_only=True)
    except MlopsError as exc:
        prefix = f"cannot read image {files.show_path(path)}: "
        reason = exc.message[len(prefix) :] if exc.message.startswith(prefix) else exc.message
        raise decode.Unreadable(reason) from None


def _decode_all(
    pool: ThreadPoolExecutor, folders: list[Folder], settings: Settings, progress: Progress
) -> tuple[list[_Image], list[Skipped]]:
    images = [_Image(i, name) for i, folder in enumerate(folders) for name in folder.files]
    tick = progress.phase("decoding", len(images))

    def one(im: _Image) -> decode.Features:
        return decode.features(_read(folders[im.folder].join(im.name)), settings.metric, settings.size)

    failures: dict[int, str] = {}
    for index, outcome in _each(pool, one, images):
        if isinstance(outcome, decode.Unreadable):
            failures[index] = str(outcome)
        else:
            images[index].features = outcome
        tick()
    skipped = [Skipped(folders[images[i].folder].path, images[i].name, failures[i]) for i in sorted(failures)]
    return images, skipped


def _each(pool: ThreadPoolExecutor, fn, items: list) -> Iterator[tuple[int, object]]:
    """(index, result or Unreadable) as tasks finish; other exceptions propagate."""
    futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
    for future in as_completed(futures):
        try:
            outcome = future.result()
        except decode.Unreadable as exc:
            outcome = exc
        yield futures[future], outcome


# --- pairing ------------------------------------------------------------------------------


def _pair_all(
    folders: list[Folder], images: list[_Image], refs: list[_Image], settings: Settings, progress: Progress
) -> tuple[list[FolderSummary], list[list[tuple[Pair, _Image | None]]]]:
    summaries, pairings = [], []
    tick = progress.phase("matching", len(folders) - 1)
    for index in range(1, len(folders)):
        cands = [im for im in images if im.folder == index and im.features is not None]
        summary, pairing = _pair(folders[index], refs, cands, settings)
        summaries.append(summary)
        pairings.append(pairing)
        tick()
    return summaries, pairings


def _pair(
    folder: Folder, refs: list[_Image], cands: list[_Image], settings: Settings
) -> tuple[FolderSummary, list[tuple[Pair, _Image | None]]]:
    if cands:
        dist = distance_matrix(settings.metric, _stack(refs), _stack(cands))
    else:
        dist = np.zeros((len(refs), 0))
    best = assign.optimal(dist, settings.max_distance)
    greedy = assign.greedy(dist, settings.max_distance)
    ranks = assign.ranks(dist, best)
    pairing: list[tuple[Pair, _Image | None]] = []
    for r, c in enumerate(best.tolist()):
        if c == assign.UNMATCHED:
            pairing.append((Pair(None, None, None), None))
        else:
            pairing.append((Pair(cands[c].name, _round(dist[r, c]), int(ranks[r])), cands[c]))
    summary = FolderSummary(
        path=folder.path,
        images=len(cands),
        ignored=folder.ignored,
        matched=int(np.count_nonzero(best != assign.UNMATCHED)),
        unmatched_references=tuple(refs[r].name for r in np.flatnonzero(best == assign.UNMATCHED)),
        leftovers=tuple(cands[c].name for c in assign.leftovers(best, len(cands))),
        greedy_disagreements=assign.disagreements(best, greedy),
        total_distance=_round(assign.total(dist, best)),
        greedy_total_distance=_round(assign.total(dist, greedy)),
        far_pairs=tuple(refs[r].name for r in assign.far_pairs(dist, best)),
    )
    return summary, pairing


def _stack(images: list[_Image]) -> np.ndarray:
    return np.stack([im.features.vector for im in images])


def _round(x: float) -> float:
    return float(f"{float(x):.6g}")


# --- strips -------------------------------------------------------------------------------


def _write_strips(
    pool: ThreadPoolExecutor,
    staging: Path,
    folders: list[Folder],
    refs: list[_Image],
    strips: list[Strip],
    pairings: list[list[tuple[Pair, _Image | None]]],
    settings: Settings,
    progress: Progress,
) -> list[Skipped]:
    from mlops_cli.images import stitch
    from mlops_cli.text import one_line

    tick = progress.phase("stitching", len(strips))

    def one(i: int) -> list[Skipped]:
        members: list[_Image | None] = [refs[i]] + [p[i][1] for p in pairings]
        sizes = [None if m is None else (m.features.width, m.features.height) for m in members]
        layout = strip_layout(sizes, settings.height, settings.labels)
        panels, lost = [], []
        for member, box in zip(members, layout.boxes):
            if member is None:
                panels.append(None)
                continue
            folder = folders[member.folder]
            try:
                panels.append(decode.panel(_read(folder.join(member.name)), box.width, layout.panel_height))
            except decode.Unreadable as exc:  # changed since it was decoded for matching
                panels.append(None)
                lost.append(Skipped(folder.path, member.name, f"unreadable when drawing {strips[i].name}: {exc}"))
        captions = None
        if settings.labels:
            captions = [one_line(f"{folders[0].name} · {refs[i].name}")]
            for folder, (pair, _) in zip(folders[1:], (p[i] for p in pairings)):
                captions.append(
                    one_line(
                        f"{folder.name} · no match"
                        if pair.file is None
                        else f"{folder.name} · {pair.file} · d={pair.distance:.4g}"
                    )
                )
        image = stitch.render(layout, panels, captions)
        with files.atomic_writer(staging / strips[i].name, what="strip") as fh:
            stitch.save(image, fh, settings.format)
        return lost

    lost_all: list[Skipped] = []
    futures = [pool.submit(one, i) for i in range(len(strips))]
    for future in as_completed(futures):
        lost_all += future.result()
        tick()
    return sorted(lost_all, key=lambda s: (s.folder, s.file))
