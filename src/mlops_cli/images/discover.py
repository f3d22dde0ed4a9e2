"""Which files of a folder are images to match, in which order.

Only the folder itself is read (not its subfolders). An entry counts when it is a regular file
(a symbolic link to one is fine) with an image extension (.jpg .jpeg .jpe .jfif .png .webp .bmp
.tif .tiff .gif, any case) whose name does not start with a dot: macOS leaves ``._IMG_1.jpg``
resource forks that are no images. Everything else is counted as ignored. Files are in natural
order, the order a file browser shows: ``img2.jpg`` before ``img10.jpg``.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from mlops_cli.errors import UsageError, os_reason
from mlops_cli.files import show_path


@dataclass(frozen=True)
class Folder:
    path: str  # as given on the command line
    files: tuple[str, ...]  # names inside it, natural order
    ignored: int  # entries that are not image files
    subfolders: tuple[str, ...] = ()  # its subfolders (natural order), for the hint when it holds no image

    @property
    def name(self) -> str:
        """What a caption calls the folder: its last path component."""
        return os.path.basename(os.path.normpath(self.path)) or self.path

    def join(self, name: str) -> str:
        return os.path.join(self.path, name)


EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    parts = _DIGITS.split(name)
    # Digits compare as numbers; the raw name breaks ties (a01 vs a1) so the order is total.
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in parts if p), name


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(EXTENSIONS)


def list_folder(path: str, *, what: str) -> Folder:
    """The image files of one folder, or one error line (exit 2) when it cannot be listed."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{what} {show_path(path)} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {show_path(path)}: {os_reason(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{what} {show_path(path)} is not a folder", hint="give folders of images, not files")
    names, subfolders = [], []
    ignored = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    regular = entry.is_file()
                    folder = not regular and entry.is_dir() and not entry.name.startswith(".")
                except OSError:
                    regular = folder = False
                if regular and is_image_name(entry.name):
                    names.append(entry.name)
                else:
                    ignored += 1
                    if folder:
                        subfolders.append(entry.name)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {show_path(path)}: {os_reason(exc)}") from None
    names.sort(key=natural_key)
    subfolders.sort(key=natural_key)
    return Folder(path, tuple(names), ignored, tuple(subfolders))


MAX_HINTED = 5


def image_subfolders(folder: Folder) -> list[tuple[str, int]]:
    """The subfolders of a folder that hold image files directly, with their counts, at most
    MAX_HINTED of them: where a tool put its outputs (GFPGAN ``results/restored_imgs``, A1111
    ``outputs/txt2img-images/<date>``). Only read to say so when the folder itself holds none."""
    found = []
    for name in folder.subfolders:
        try:
            sub = list_folder(folder.join(name), what="folder")
        except UsageError:
            continue
        if sub.files:
            found.append((name, len(sub.files)))
            if len(found) == MAX_HINTED:
                break
    return found
