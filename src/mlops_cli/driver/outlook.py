"""Does the GPU work now, and will it after a reboot? Read from a driver-check JSON document.

Pure, and built only on the documented JSON schema (docs/driver-check.md: ``status``,
``kernel``, ``driver``, ``findings[].id/severity/kernel``), so finding ids added later are
handled without a change here: an unknown error finding is taken to be about the running
kernel (when it names no other) and to survive a reboot. The same answer feeds the Prometheus
metrics, ``mlops report`` and the Ansible role (which calls ``mlops report``), so they never
disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Error findings that a reboot itself cures: the newer module on disk is loaded at boot.
CURED_BY_REBOOT = frozenset({"version_mismatch_pending_reboot"})
# Error findings that only follow from another one (containers fail because the host driver
# does): they last as long as their cause, so they count only when no other error is present.
FOLLOWS_OTHERS = frozenset({"container_host_driver_broken"})


@dataclass(frozen=True)
class Outlook:
    works_now: bool  # no error finding about the running kernel (False on status no-gpu)
    next_kernel: str | None  # the kernel that boots next
    module_present: bool | None  # does that kernel have an nvidia module? None: cannot tell
    after_reboot: bool | None  # will the GPU work after the next reboot? None: cannot tell (no GPU seen now)
    blocking: tuple[str, ...]  # ids of the error findings that stop it


def _errors(doc: dict[str, Any]) -> list[dict[str, Any]]:
    findings = doc.get("findings")
    if not isinstance(findings, list):
        return []
    return [
        f for f in findings if isinstance(f, dict) and f.get("severity") == "error" and isinstance(f.get("id"), str)
    ]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def outlook(doc: dict[str, Any]) -> Outlook:
    """The outlook now and after the next reboot, from what the check reported.

    - Works now: status ``ok``, or every error finding names another kernel than the running one.
    - A kernel judged with ``--kernel`` (``judged_has_module``) is taken as said.
    - The next-boot kernel lacks a module when an error finding names it (headers missing for
      it, a failed build, ``next_boot_kernel_missing_module``); when it is the running kernel,
      a module is present when one is loaded or on disk.
    - The GPU works after the reboot unless the next-boot kernel lacks a module, or an error
      finding that names no other kernel, and that a reboot does not cure, is present.
    """
    kernel, driver = _dict(doc.get("kernel")), _dict(doc.get("driver"))
    running = kernel.get("running") if isinstance(kernel.get("running"), str) else None
    nb = kernel.get("next_boot") if isinstance(kernel.get("next_boot"), str) else running
    all_errors = _errors(doc)
    if doc.get("status") == "no-gpu":
        return Outlook(False, nb, None, None, ())
    works_now = doc.get("status") == "ok" or all(f.get("kernel") and f.get("kernel") != running for f in all_errors)
    causes = [f for f in all_errors if f["id"] not in FOLLOWS_OTHERS]
    errors = [f for f in (causes or all_errors) if f["id"] not in CURED_BY_REBOOT]
    about_nb = [f for f in errors if f.get("kernel") == nb]

    module: bool | None
    if nb is not None and kernel.get("judged") == nb and isinstance(kernel.get("judged_has_module"), bool):
        module = kernel["judged_has_module"]
    elif nb is not None and nb != running:
        module = not about_nb  # the check judges a different next-boot kernel by itself
    elif driver.get("module_on_disk") or driver.get("module_loaded"):
        module = True
    else:
        module = False if (about_nb or doc.get("status") == "problem") else None

    # Findings about another kernel (the running one, when a different one boots next) stay behind.
    follow = [f for f in errors if not f.get("kernel") or f.get("kernel") == nb]
    blocking = tuple(dict.fromkeys(f["id"] for f in follow))
    if module is False and not blocking:
        blocking = ("next_boot_kernel_missing_module",)
    return Outlook(works_now, nb, module, not blocking and module is not False, blocking)
