"""LLaMA-Factory's chat templates, by release, as far as they decide a record's fate (pure lookups).

templates.json is read out of each release's own data/template.py (tests/data/lf_templates.py):
the tool format of its formatters, the media its multimodal plugin takes, its thought words and
tool-call words. What depends on them:
* a template without a multimodal plugin stops the run on the first record with media
  ("This model does not support image input");
* one with a plugin counts <image>/<video>/<audio> in every message against the media, all three
  kinds (a literal "<video>" in a text answer is a mismatch);
* a function call is parsed after the template's thought block (0.9.4+: its own words) and
  tool-call wrapper are set apart;
* the tools JSON is read by the template's tool format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Optional

from mlops_cli.data.versions import Rules, parse_version
from mlops_cli.errors import UsageError


@dataclass(frozen=True)
class Template:
    name: Optional[str]  # None: not given (assumed from the data)
    tools: str  # the tool format: default, qwen, glm4, llama3, mistral...
    media: Optional[str]  # "i", "iv", "iva"... media the plugin takes; "" text only; None unknown (assumed)
    thought: Optional[tuple[str, str]]  # thought words (0.9.2+)
    tool_call: Optional[tuple[str, str]]  # tool-call words (0.9.4+)
    release: str  # the table's release these facts were read from
    plain_function: bool = False  # its template class hands the function formatter no words (Llama2Template)

    @property
    def label(self) -> str:
        return f"template {self.name}" if self.name else "the template (not given; assumed qwen-like)"

    def takes(self, key: str) -> bool:
        return self.media is None or key[0] in self.media


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(resources.files("mlops_cli.data").joinpath("templates.json").read_text(encoding="utf-8"))


def _release(rules: Rules) -> tuple[str, dict]:
    """The newest release in the table that is not newer than the one judged."""
    want = parse_version(rules.version)
    releases = sorted(_table()["releases"].items(), key=lambda kv: parse_version(kv[0]))
    chosen = releases[0]
    for name, data in releases:
        if parse_version(name) <= want:
            chosen = (name, data)
    return chosen


def template_for(name: Optional[str], rules: Rules, media_mapped: bool) -> Template:
    """The template `name` of the judged release; without a name, a qwen-family one (qwen2_vl when the
    entry maps media columns), the templates most runs use."""
    release, data = _release(rules)
    templates = data["templates"]
    given = name
    if name is None:
        name = "qwen2_vl" if media_mapped and "qwen2_vl" in templates else "qwen"
    if name not in templates:
        close = sorted(t for t in templates if name.split("_")[0] in t)[:8]
        raise UsageError(
            f"LLaMA-Factory {release} has no template {name!r}",
            hint=("templates named like it: " + ", ".join(close))
            if close
            else "pass the name given to llamafactory-cli as template:",
        )
    t = templates[name]
    defaults = data.get("defaults", {})
    thought = t.get("thought", defaults.get("thought"))
    tool_call = t.get("tool_call", defaults.get("tool_call"))
    media = t.get("media", "")
    if given is None and media_mapped:
        media = None  # not given: assume it takes whatever the entry maps
    plain = bool(t.get("plain_function"))
    return Template(
        given,
        t["tools"],
        media,
        None if plain or not thought else tuple(thought),
        None if plain or not tool_call else tuple(tool_call),
        release,
        plain,
    )
