"""One fleet summary from many nodes' documents (pure: no I/O, linear in their number).

Each node gets a status (``ok``, ``problem``, ``no-gpu`` or ``failed``: its check could not
run) from each command's own verdict; the worst one is the node's. Nodes whose documents say
the same thing with the same fix are one group, with one plan: for driver-check, the same
findings (id and severity, in order) and the same fix steps; for oom-check, the same model
not fitting with the same remedy plan; for a failed check, the same error message. The
outlook of a driver-check document comes from ``driver.outlook``, the one place it
is decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops_cli.driver.outlook import outlook as driver_outlook
from mlops_cli.errors import ExitCode
from mlops_cli.fleet.inputs import Document, Unusable

STATUSES = ("ok", "problem", "no-gpu", "failed")
_RANK = {"ok": 0, "no-gpu": 1, "failed": 2, "problem": 3}


@dataclass
class Group:
    kind: str
    status: str
    title: str
    findings: list[dict[str, str]]  # id and severity, in the order the check gave them
    steps: list[dict[str, Any]]  # argv (without sudo), why, reboot_after; or change/cost for oom-check
    manual: list[str]
    loses_gpu_at_next_boot: bool | None
    works_now: bool | None = None
    nodes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        from mlops_cli.fleet.hostlist import compress

        return {
            "kind": self.kind,
            "status": self.status,
            "title": self.title,
            "nodes": self.nodes,
            "hostlist": compress(self.nodes),
            "findings": self.findings,
            "works_now": self.works_now,
            "gpu_after_reboot": _negate(self.loses_gpu_at_next_boot),
            "plan": {"steps": self.steps, "manual": self.manual},
        }


@dataclass
class NodeView:
    node: str
    status: str = "ok"
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> what it said
    loses_gpu_at_next_boot: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "status": self.status,
            "gpu_after_reboot": _negate(self.loses_gpu_at_next_boot),
            "checks": self.checks,
        }


@dataclass
class FleetSummary:
    nodes: dict[str, NodeView]
    groups: list[Group]
    unusable: list[Unusable]
    documents: int

    @property
    def broken(self) -> list[str]:
        return [n.node for n in self.nodes.values() if n.status in ("problem", "failed") or n.loses_gpu_at_next_boot]

    @property
    def exit_code(self) -> int:
        if self.broken:
            return ExitCode.PROBLEM
        return ExitCode.USAGE if self.unusable else ExitCode.OK

    def by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for n in self.nodes.values():
            counts[n.status] = counts.get(n.status, 0) + 1
        return counts

    def by_finding(self) -> dict[str, dict[str, Any]]:
        """Finding id -> severity and the number of nodes that report it (most nodes first)."""
        seen: dict[str, dict[str, Any]] = {}
        for n in self.nodes.values():
            for f in n.checks.get("driver-check", {}).get("findings", []):
                entry = seen.setdefault(f["id"], {"severity": f["severity"], "nodes": 0, "_last": None})
                if entry["_last"] != n.node:  # a node counts once per id
                    entry["nodes"] += 1
                    entry["_last"] = n.node
        for entry in seen.values():
            del entry["_last"]
        return dict(sorted(seen.items(), key=lambda kv: (-kv[1]["nodes"], kv[0])))

    def gpu_counts(self) -> dict[int, int]:
        """GPUs per node (from `mlops gpu`) -> number of nodes."""
        counts: dict[int, int] = {}
        for n in self.nodes.values():
            gpu = n.checks.get("gpu")
            if gpu is not None and isinstance(gpu.get("gpu_count"), int):
                counts[gpu["gpu_count"]] = counts.get(gpu["gpu_count"], 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def loses_gpu(self) -> list[str]:
        return [n.node for n in self.nodes.values() if n.loses_gpu_at_next_boot]


def _negate(value: bool | None) -> bool | None:
    return None if value is None else not value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _driver_view(doc: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any, ...] | None, Group | None, bool | None]:
    status = _str(doc.get("status"), "problem")
    if status not in ("ok", "problem", "no-gpu"):
        status = "problem"
    findings = [f for f in _list(doc.get("findings")) if isinstance(f, dict) and isinstance(f.get("id"), str)]
    ids = [{"id": f["id"], "severity": _str(f.get("severity"), "error")} for f in findings]
    outlook = driver_outlook(doc)
    loses = None if outlook.after_reboot is None else not outlook.after_reboot
    view = {
        "status": status,
        "works_now": outlook.works_now,
        "findings": ids,
        "next_boot_kernel": outlook.next_kernel,
        "next_boot_module_present": outlook.module_present,
        "gpu_after_reboot": outlook.after_reboot,
        "blocking": list(outlook.blocking),
    }
    if not findings:
        return view, None, None, loses
    steps: list[dict[str, Any]] = []
    seen_argv: set[tuple[str, ...]] = set()
    manual: list[str] = []
    for f in findings:
        fix = f.get("fix") if isinstance(f.get("fix"), dict) else {}
        for s in _list(fix.get("steps")):
            if not isinstance(s, dict) or not isinstance(s.get("argv"), list):
                continue
            argv = tuple(str(a) for a in s["argv"])
            if argv and argv not in seen_argv:
                seen_argv.add(argv)
                steps.append(
                    {
                        "argv": list(argv),
                        "why": _str(s.get("why")),
                        "reboot_after": bool(s.get("reboot_after")),
                        "finding": f["id"],
                    }
                )
        if isinstance(fix.get("manual"), str) and fix["manual"] and fix["manual"] not in manual:
            manual.append(fix["manual"])
    key = (
        "driver-check",
        status,
        outlook.works_now,
        loses,
        tuple((i["id"], i["severity"]) for i in ids),
        tuple(tuple(s["argv"]) for s in steps),
        tuple(manual),
    )
    first = next((f for f in findings if f.get("severity") == "error"), findings[0])
    group = Group(
        "driver-check", status, _str(first.get("title"), first["id"]), ids, steps, manual, loses, outlook.works_now
    )
    return view, key, group, loses


def _gpu_view(doc: dict[str, Any]) -> dict[str, Any]:
    count = doc.get("gpu_count") if isinstance(doc.get("gpu_count"), int) else len(_list(doc.get("gpus")))
    return {
        "status": "ok" if count else "no-gpu",
        "gpu_count": count,
        "driver_version": doc.get("driver_version") if isinstance(doc.get("driver_version"), str) else None,
    }


def _oom_view(doc: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any, ...] | None, Group | None]:
    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    name = _str(model.get("name"), "model")
    fits = bool(doc.get("fits"))
    view = {
        "status": "ok" if fits else "problem",
        "model": name,
        "fits": fits,
        "required_bytes": doc.get("required_bytes"),
        "capacity_bytes": doc.get("capacity_bytes"),
    }
    if fits:
        return view, None, None
    plan = [r for r in _list(doc.get("plan")) if isinstance(r, dict)]
    steps = [{"change": _str(r.get("what"), _str(r.get("name"))), "cost": _str(r.get("cost"))} for r in plan]
    key = ("oom-check", name, tuple(s["change"] for s in steps))
    manual = [] if steps else ["no remedy in the catalogue makes it fit: a GPU with more memory is needed"]
    group = Group("oom-check", "problem", f"{name} does not fit", [], steps, manual, None)
    return view, key, group


def _error_view(doc: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any, ...], Group]:
    err = doc["error"]
    message = _str(err.get("message"), "the check failed")
    code = err.get("exit_code")
    status = "no-gpu" if code == ExitCode.NOT_APPLICABLE else "failed"
    hint = _str(err.get("hint"))
    view = {"status": status, "error": message, "exit_code": code}
    group = Group("error", status, message, [], [], [hint] if hint else [], None)
    return view, ("error", status, message, hint), group


def summarize(documents: list[Document], unusable: list[Unusable]) -> FleetSummary:
    nodes: dict[str, NodeView] = {}
    groups: dict[tuple[Any, ...], Group] = {}
    problems = list(unusable)
    kinds_seen: dict[tuple[str, str], str] = {}
    for d in documents:
        check_kind = d.kind if d.kind != "error" else "check"
        if (d.node, check_kind) in kinds_seen and d.kind != "error":
            problems.append(
                Unusable(
                    d.origin,
                    f"a second {d.kind} document for node {d.node} "
                    f"(the one from {kinds_seen[(d.node, check_kind)]} is used)",
                )
            )
            continue
        kinds_seen[(d.node, check_kind)] = d.origin
        node = nodes.setdefault(d.node, NodeView(d.node))
        key = group = None
        if d.kind == "driver-check":
            view, key, group, loses = _driver_view(d.doc)
            node.loses_gpu_at_next_boot = loses
        elif d.kind == "gpu":
            view = _gpu_view(d.doc)
        elif d.kind == "oom-check":
            view, key, group = _oom_view(d.doc)
        else:
            view, key, group = _error_view(d.doc)
        view["source"] = d.origin
        node.checks[d.kind if d.kind != "error" else f"error:{len(node.checks)}"] = view
        if _RANK[view["status"]] > _RANK[node.status]:
            node.status = view["status"]
        if key is not None and group is not None:
            groups.setdefault(key, group).nodes.append(d.node)
    ordered = sorted(groups.values(), key=lambda g: (-_RANK[g.status], not g.loses_gpu_at_next_boot, -len(g.nodes)))
    return FleetSummary(nodes, ordered, problems, len(documents))
