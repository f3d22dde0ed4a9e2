"""The Prometheus text exposition format (version 0.0.4), for node_exporter's textfile collector.

Pure: builds text, writes nothing (``promfile.py`` writes it). Every metric family is written
once, with its ``# HELP`` and ``# TYPE`` lines and its samples together; no sample carries a
timestamp (node_exporter's textfile collector refuses client-side timestamps). Label values
come from machines (driver versions, GPU names, kernel releases) and are made safe here:
control characters are shown as escapes, backslash, double quote and newline are escaped as
the format requires, and a value is at most ``MAX_LABEL_VALUE`` characters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from mlops_cli.text import clean, shorten

METRIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")  # no ':' (reserved for recording rules)
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("gauge", "counter", "untyped")
MAX_LABEL_VALUE = 256


def format_value(value: float | int | bool) -> str:
    """A sample value as the format writes it: integers without a point, NaN, +Inf, -Inf."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def label_value(value: object) -> str:
    """A label value escaped for the format, from any text (a machine's, so untrusted)."""
    text = shorten(clean(str(value)).replace("\n", " "), MAX_LABEL_VALUE)
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _help_text(text: str) -> str:
    return clean(text).replace("\\", "\\\\").replace("\n", "\\n")


@dataclass
class Family:
    """One metric: its name, help, type and samples (label set -> value)."""

    name: str
    help: str
    type: str = "gauge"
    samples: list[tuple[tuple[tuple[str, str], ...], float | int | bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not METRIC_NAME.match(self.name):
            raise ValueError(f"not a Prometheus metric name: {self.name!r}")
        if self.type not in TYPES:
            raise ValueError(f"not a metric type: {self.type!r}")
        if (self.type == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: a counter's name, and only a counter's, ends in _total")

    def add(self, value: float | int | bool, **labels: object) -> Family:
        """Add a sample. Labels whose value is None or '' are left out (Prometheus treats an
        empty label as an absent one). The same label set twice is a bug, not data."""
        pairs = []
        for key, raw in labels.items():
            if not LABEL_NAME.match(key) or key.startswith("__"):
                raise ValueError(f"not a label name: {key!r}")
            if raw is None or raw == "":
                continue
            pairs.append((key, label_value(raw)))
        key_set = tuple(pairs)
        if any(existing == key_set for existing, _ in self.samples):
            raise ValueError(f"{self.name}: the label set {dict(key_set)} is given twice")
        self.samples.append((key_set, value))
        return self


def render(families: list[Family]) -> str:
    """The text of a .prom file: every family with samples, in the order given."""
    seen: set[str] = set()
    lines: list[str] = []
    for fam in families:
        if fam.name in seen:
            raise ValueError(f"metric {fam.name} is given twice")
        seen.add(fam.name)
        if not fam.samples:
            continue
        lines.append(f"# HELP {fam.name} {_help_text(fam.help)}")
        lines.append(f"# TYPE {fam.name} {fam.type}")
        for labels, value in fam.samples:
            body = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{fam.name}{{{body}}} {format_value(value)}" if body else f"{fam.name} {format_value(value)}")
    return "\n".join(lines) + "\n" if lines else ""
