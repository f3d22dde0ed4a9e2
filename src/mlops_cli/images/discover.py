"""Which files of a folder are images to match, in which order.

Only the folder itself is read (not its subfolders). An entry counts when it is a regular file
(a symbolic link to one is fine) with an image extension (.jpg .jpeg .jpe .jfif .png .webp .bmp
.tif .tiff, any case) whose name does not start with a dot: macOS leaves ``._IMG_1.jpg``
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

    @property
    def name(self) -> str:
        """What a caption calls the folder: its last path component."""
        return os.path.basename(os.path.normpath(self.path)) or self.path

    def join(self, name: str) -> str:
        return os.path.join(self.path, name)


EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff")
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
    names = []
    ignored = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    regular = entry.is_file()
                except OSError:
                    regular = False
                if regular and is_image_name(entry.name):
                    names.append(entry.name)
                else:
                    ignored += 1
    except OSError as exc:
        raise UsageError(f"cannot read {what} {show_path(path)}: {os_reason(exc)}") from None
    names.sort(key=natural_key)
    return Folder(path, tuple(names), ignored)
