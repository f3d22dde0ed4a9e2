"""driver-check's result as Prometheus metrics (``mlops driver-check --prometheus FILE``).

Pure: maps the command's JSON document (schema in docs/driver-check.md) to metric families,
so a finding id added later appears as a ``finding`` label value without a change here.
Names follow Prometheus' conventions (base units in the name, ``_info`` for labels that
describe the node, no per-finding text or evidence in labels: only ids, whose number is small).
"""

from __future__ import annotations

from typing import Any

from mlops_cli.driver.outlook import outlook as driver_outlook
from mlops_cli.metrics import Family

PREFIX = "mlops_driver_check"
SEVERITIES = ("error", "warning", "info")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def build(doc: dict[str, Any], *, exit_code: int, timestamp: float, duration: float | None) -> list[Family]:
    """The metric families for one driver-check result."""
    kernel = doc.get("kernel") if isinstance(doc.get("kernel"), dict) else {}
    driver = doc.get("driver") if isinstance(doc.get("driver"), dict) else {}
    findings = [f for f in _list(doc.get("findings")) if isinstance(f, dict) and _text(f.get("id"))]
    status = _text(doc.get("status")) or "unknown"
    outlook = driver_outlook(doc)

    info = Family(
        f"{PREFIX}_info",
        "The last driver-check: status (ok, problem, no-gpu), exit code, "
        "driver version, install method and kernels as labels; the value is always 1.",
    )
    info.add(
        1,
        status=status,
        exit_code=str(int(exit_code)),
        driver_version=_text(driver.get("module_loaded")) or _text(driver.get("userspace")) or "none",
        install_method=_text(driver.get("install_method")) or "unknown",
        kernel=_text(kernel.get("running")),
        next_boot_kernel=outlook.next_kernel,
    )
    healthy = Family(
        f"{PREFIX}_healthy",
        "1 when the NVIDIA driver works on the running kernel (no error "
        "finding about it), 0 when it does not, or when no GPU is seen on a node that runs this check.",
    )
    healthy.add(outlook.works_now)

    counts = Family(f"{PREFIX}_findings", "Number of findings by severity (every severity is always present).")
    for severity in SEVERITIES:
        counts.add(sum(1 for f in findings if f.get("severity") == severity), finding_severity=severity)
    per_class = Family(
        f"{PREFIX}_finding",
        "Findings of one class (finding id, as in docs/driver-check.md) "
        "present in the last check; classes not present have no sample.",
    )
    tally: dict[tuple[str, str], int] = {}
    for f in findings:
        key = (f["id"], _text(f.get("severity")) or "unknown")
        tally[key] = tally.get(key, 0) + 1
    for (fid, severity), n in tally.items():
        per_class.add(n, finding=fid, finding_severity=severity)

    module = Family(
        f"{PREFIX}_next_boot_module_present",
        "1 when the kernel that boots next has an nvidia module, 0 when it has none; no sample when it cannot be told.",
    )
    if outlook.module_present is not None:
        module.add(outlook.module_present, kernel=outlook.next_kernel)
    keeps = Family(
        f"{PREFIX}_next_boot_healthy",
        "1 when the GPU is expected to work after the next reboot, "
        "0 when it will not (no module for that kernel, or a problem a reboot does not cure).",
    )
    if outlook.after_reboot is not None:
        keeps.add(outlook.after_reboot, kernel=outlook.next_kernel)

    gpus = Family(f"{PREFIX}_gpus", "NVIDIA GPUs seen on the PCI bus.")
    gpus.add(len(_list(doc.get("gpus"))))
    not_seen = Family(
        f"{PREFIX}_not_seen_probes",
        "Probes or files the check could not read (run as root to see them); the diagnosis is blind there.",
    )
    not_seen.add(len(_list(doc.get("not_seen"))))
    stamp = Family(f"{PREFIX}_timestamp_seconds", "When the check finished, in seconds since the Unix epoch.")
    stamp.add(round(timestamp, 3))
    took = Family(f"{PREFIX}_duration_seconds", "How long the check took, in seconds.")
    if duration is not None:
        took.add(round(duration, 3))
    return [info, healthy, counts, per_class, module, keeps, gpus, not_seen, stamp, took]
