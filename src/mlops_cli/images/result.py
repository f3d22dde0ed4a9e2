"""The result of `mlops images match`: one object for the terminal, --json and matches.csv."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from mlops_cli.text import one_line, shorten_list

CSV_HEADER = ("strip", "reference", "folder", "match", "distance", "rank")


@dataclass(frozen=True)
class Pair:
    """A reference's partner in one other folder; all None when it has none."""

    file: str | None
    distance: float | None
    rank: int | None  # 1: the partner is the reference's nearest image in that folder


@dataclass(frozen=True)
class Strip:
    name: str  # 001.jpg
    reference: str
    pairs: tuple[Pair, ...]  # one per other folder, in command-line order


@dataclass(frozen=True)
class FolderSummary:
    path: str
    images: int  # readable images that took part
    ignored: int  # entries that are not image files
    matched: int
    unmatched_references: tuple[str, ...]
    leftovers: tuple[str, ...]  # its images no reference was paired with
    greedy_disagreements: int  # references the greedy recipe would have paired otherwise
    total_distance: float
    greedy_total_distance: float
    far_pairs: tuple[str, ...] = ()  # references whose pair is an outlier in distance (assign.far_pairs)


@dataclass(frozen=True)
class Skipped:
    folder: str
    file: str
    reason: str


@dataclass
class MatchResult:
    reference: str
    reference_images: int
    reference_ignored: int
    folders: tuple[FolderSummary, ...]
    strips: tuple[Strip, ...]
    skipped: tuple[Skipped, ...]
    settings: dict[str, Any]
    out: str
    replaced: bool
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.skipped else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "replaced": self.replaced,
            **self.settings,
            "reference": {"folder": self.reference, "images": self.reference_images, "ignored": self.reference_ignored},
            "folders": [
                {
                    "folder": f.path,
                    "images": f.images,
                    "ignored": f.ignored,
                    "matched": f.matched,
                    "unmatched_references": list(f.unmatched_references),
                    "leftovers": list(f.leftovers),
                    "greedy_disagreements": f.greedy_disagreements,
                    "far_pairs": list(f.far_pairs),
                    "not_nearest": sum(1 for s in self.strips if (s.pairs[index].rank or 0) > 1),
                    "total_distance": {"optimal": f.total_distance, "greedy": f.greedy_total_distance},
                }
                for index, f in enumerate(self.folders)
            ],
            "strips": [
                {
                    "strip": s.name,
                    "reference": s.reference,
                    "matches": [
                        {"folder": f.path, "file": p.file, "distance": p.distance, "rank": p.rank}
                        for f, p in zip(self.folders, s.pairs)
                    ],
                }
                for s in self.strips
            ],
            "skipped": [{"folder": s.folder, "file": s.file, "reason": s.reason} for s in self.skipped],
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def csv_bytes(self) -> bytes:
        """matches.csv: one row per reference and other folder; empty cells where no match."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for s in self.strips:
            for f, p in zip(self.folders, s.pairs):
                writer.writerow(
                    [
                        s.name,
                        s.reference,
                        f.path,
                        p.file or "",
                        "" if p.distance is None else repr(p.distance),
                        p.rank or "",
                    ]
                )
        # File names are written back byte for byte, also when they are not UTF-8.
        return buf.getvalue().encode("utf-8", "surrogateescape")

    def render(self, console) -> None:
        from rich.table import Table

        s = self.settings
        console.print(
            f"Paired {self.reference_images} reference image(s) of {one_line(self.reference)} with "
            f"{len(self.folders)} folder(s) by {s['metric']}"
            + (f" ({s['size']}x{s['size']} thumbnails)" if s["metric"] != "phash" else " (64-bit hashes)")
            + ("" if s["max_distance"] is None else f", pairs over {s['max_distance']:g} left unmatched")
            + ".",
            markup=False,
        )
        table = Table(show_edge=False, pad_edge=False)
        for title in ("folder", "images", "paired", "no match", "left over", "greedy would differ"):
            table.add_column(title, justify="left" if title == "folder" else "right")
        for f in self.folders:
            table.add_row(
                one_line(f.path),
                str(f.images),
                str(f.matched),
                str(len(f.unmatched_references)),
                str(len(f.leftovers)),
                str(f.greedy_disagreements),
            )
        console.print(table)
        for index, f in enumerate(self.folders):
            far = [(s.reference, s.pairs[index]) for s in self.strips if (s.pairs[index].rank or 0) > 1]
            if far:
                console.print(
                    f"Not the nearest image in {one_line(f.path)}, {len(far)} (worth a look): "
                    + shorten_list(
                        [f"{one_line(ref)} -> {one_line(p.file)} (rank {p.rank}, d={p.distance:.4g})" for ref, p in far]
                    ),
                    markup=False,
                )
            if f.far_pairs:
                console.print(
                    f"Far from the other pairs in {one_line(f.path)}, {len(f.far_pairs)} (10x the median "
                    "distance or more: likely no true output there, check them or use --max-distance): "
                    + shorten_list([one_line(n) for n in f.far_pairs]),
                    markup=False,
                )
            if f.unmatched_references:
                console.print(
                    f"No match in {one_line(f.path)} for {len(f.unmatched_references)}: "
                    + shorten_list([one_line(n) for n in f.unmatched_references]),
                    markup=False,
                )
            if f.leftovers:
                console.print(
                    f"Left over in {one_line(f.path)}, {len(f.leftovers)}: "
                    + shorten_list([one_line(n) for n in f.leftovers]),
                    markup=False,
                )
        if any((p.rank or 0) > 1 for s in self.strips for p in s.pairs):
            console.print(
                "A pair that is not the nearest is either a greedy mistake put right, or a reference "
                "whose output is missing, paired with what is left; --max-distance X leaves pairs "
                "farther apart than X unmatched.",
                markup=False,
            )
        console.print(
            f"Wrote {len(self.strips)} strip(s) and matches.csv to {one_line(self.out)}"
            + (" (replacing its previous output)." if self.replaced else "."),
            markup=False,
        )
        if self.skipped:
            console.print(f"Skipped {len(self.skipped)} unreadable file(s):", markup=False)
            for k in self.skipped:
                console.print(f"  {one_line(k.folder)}/{one_line(k.file)}: {one_line(k.reason)}", markup=False)
