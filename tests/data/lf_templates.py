"""Read LLaMA-Factory's chat templates out of a release's own `data/template.py` (by its syntax tree,
nothing imported) into the table `mlops data check --template` uses
(src/mlops_cli/data/templates.json).

    python tests/data/lf_templates.py /tmp/lf/u-0.8.3 /tmp/lf/u-0.9.1 ... > src/mlops_cli/data/templates.json

Per release and template: the tool format of its tools/function formatters, the media its
multimodal plugin takes (i image, v video, a audio), its thought words and tool-call words (the
release's defaults filled in) and whether it is a reasoning template. tests/data/test_heldout.py
compares the shipped table with the source LLAMAFACTORY_SRC names.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any, Optional


def _const(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return None


def _call_kw(node: ast.AST, func: str) -> Optional[dict]:
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == func:
        return {k.arg: k.value for k in node.keywords if k.arg}
    return None


def _defaults(tree: ast.AST) -> dict:
    """The thought/tool-call words register_template falls back to (`x or (...)`), if any."""
    out = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.keyword)
            and node.arg in ("thought_words", "tool_call_words")
            and isinstance(node.value, ast.BoolOp)
        ):
            out[node.arg] = _const(node.value.values[-1])
    return out


def _plain_classes(tree: ast.AST, source: str) -> set[str]:
    """Template classes whose _encode hands the function formatter no thought/tool-call words
    (Llama2Template in 0.9.4+): their function calls are parsed as they are."""
    classes = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}

    def passes(name: str, seen: frozenset = frozenset()) -> bool:
        node = classes.get(name)
        if node is None or name in seen:
            return True
        encode = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "_encode"), None)
        if encode is not None:
            return "tool_call_words" in (ast.get_source_segment(source, encode) or "")
        return all(passes(getattr(b, "id", ""), seen | {name}) for b in node.bases)

    if "tool_call_words" not in source:
        return set()
    return {name for name in classes if name.endswith("Template") and not passes(name)}


def read_templates(source: str) -> dict[str, Any]:
    """{"defaults": {thought, tool_call}, "templates": {name: {tools, media?, thought?, tool_call?, reasoning?,
    plain_function?}}}: a template's thought/tool-call words are listed only where they differ from the
    release's defaults."""
    tree = ast.parse(source)
    defaults = _defaults(tree)
    plain = _plain_classes(tree, source)
    out: dict[str, dict] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or getattr(node.func, "id", None) not in (
            "register_template",
            "_register_template",
        ):
            continue
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        name = _const(kw.get("name")) if "name" in kw else None
        if not isinstance(name, str):
            continue
        tools = "default"
        for key, func in (("format_tools", "ToolFormatter"), ("format_function", "FunctionFormatter")):
            inner = _call_kw(kw.get(key), func) if key in kw else None
            if inner and "tool_format" in inner:
                tools = _const(inner["tool_format"]) or tools
                break
        media = ""
        plugin = _call_kw(kw.get("mm_plugin"), "get_mm_plugin") if "mm_plugin" in kw else None
        if plugin:
            for letter, token in (("i", "image_token"), ("v", "video_token"), ("a", "audio_token")):
                if _const(plugin.get(token)) is not None:
                    media += letter
        entry: dict[str, Any] = {"tools": tools}
        if media:
            entry["media"] = media
        for key in ("thought_words", "tool_call_words"):
            value = _const(kw[key]) if key in kw else None
            if value and tuple(value) != tuple(defaults.get(key) or ()):
                entry[key.split("_words")[0]] = list(value)
        template_class = getattr(kw.get("template_class"), "id", None)
        if template_class == "ReasoningTemplate":
            entry["reasoning"] = True
        if template_class in plain:
            entry["plain_function"] = True
        out[name] = entry
    return {"defaults": {k.split("_words")[0]: list(v) for k, v in defaults.items() if v}, "templates": out}


def release(src: Path) -> tuple[str, dict]:
    pkg = next(p for p in ("llamafactory", "llmtuner") if (src / p).is_dir())
    dist = next(src.glob("*.dist-info"), None)
    version = dist.name.removesuffix(".dist-info").split("-")[1] if dist else src.name
    return version, read_templates((src / pkg / "data" / "template.py").read_text())


def main(argv: list[str]) -> int:
    table = {
        "source": "register_template calls of each release's data/template.py (tests/data/lf_templates.py)",
        "releases": {},
    }
    for arg in argv:
        version, templates = release(Path(arg))
        table["releases"][version] = templates
    json.dump(table, sys.stdout, indent=None, separators=(",", ":"), sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
