"""The safety gate every plan passes before it is shown or run. Pure.

1. Context: outside bare metal and ordinary VMs (WSL, containers/LXC, GPU Operator nodes, vGPU
   guests) no automated step installs, removes or rebuilds kernel-level driver parts, loads
   modules or reboots: such steps are removed and the finding says where the fix belongs.
2. The distribution's own tools: plans are written in Debian terms; on another family a
   Debian-only step becomes the family's equivalent (headers, initramfs) or is left to a person.
3. No repeat: a step the evidence shows just failed (the same DKMS build for the same driver and
   kernel, a compiler install that is already there) never appears unchanged in a plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from mlops_cli.driver import distro
from mlops_cli.driver.context import Context
from mlops_cli.driver.model import Finding, FixPlan

# Programs whose steps change the system below the application: packages, DKMS, headers, .run
# installers, initramfs, module loads, services. None runs in a gated context.
KERNEL_LEVEL = frozenset(
    {
        "apt-get",
        "apt",
        "apt-mark",
        "dpkg",
        "dkms",
        "update-initramfs",
        "ubuntu-drivers",
        "nvidia-uninstall",
        "/usr/bin/nvidia-uninstall",
        "modprobe",
        "depmod",
        "reboot",
        "sh",
        "install",
        "mokutil",
        "nvidia-installer",
        "systemctl",
        "nvidia-ctk",
        "dnf",
        "yum",
        "zypper",
        "pacman",
        "rpm",
        "rpm-ostree",
        "dracut",
        "mkinitcpio",
        "akmods",
        "grubby",
    }
)


def program(argv: Iterable[str]) -> str:
    """The program a step runs (``env VAR=1 dkms ...`` runs dkms)."""
    args = list(argv)
    if args[:1] == ["env"]:
        return next((a for a in args[1:] if "=" not in a), "env")
    return args[0] if args else ""


def blocked(argv: Iterable[str], ctx: Context) -> bool:
    return ctx.gated and program(argv) in KERNEL_LEVEL


def apply(
    findings: list[Finding],
    ctx: Context,
    failed: set[tuple[str, ...]],
    fam: str = distro.UNKNOWN,
    os_release: dict[str, str] | None = None,
) -> list[Finding]:
    out = []
    for f in findings:
        f = _in_family_terms(f, fam, os_release or {})
        steps = f.fix.steps
        removed = [s for s in steps if blocked(s.argv, ctx)]
        repeats = [steps[i] for i in repeated_failures([s.argv for s in steps], failed, indexes=True)]
        if not removed and not repeats:
            out.append(f)
            continue
        keep = tuple(s for s in steps if s not in removed and s not in repeats)
        notes = [f.fix.manual] if f.fix.manual else []
        if removed:
            notes.append(
                f"Nothing runs here: this check runs in a {ctx.kind} context, where the fix belongs {ctx.where_fix_belongs}."
            )
        if repeats:
            notes.append(
                "Not repeated: "
                + "; ".join(" ".join(s.argv) for s in repeats)
                + " just failed on this machine with the same inputs."
            )
        out.append(dataclasses.replace(f, fix=FixPlan(f.fix.summary, keep, " ".join(notes))))
    return out


def _in_family_terms(f: Finding, fam: str, os_release: dict[str, str]) -> Finding:
    """Debian-only steps in the family's own tools, or out of the plan with a note."""
    kept, dropped, changed = [], [], False
    for s in f.fix.steps:
        argv = distro.translate(tuple(s.argv), fam, os_release)
        if argv is None:
            dropped.append(tuple(s.argv))
            changed = True
        elif argv != tuple(s.argv):
            kept.append(dataclasses.replace(s, argv=argv))
            changed = True
        else:
            kept.append(s)
    if not changed:
        return f
    notes = [f.fix.manual] if f.fix.manual else []
    if dropped:
        notes.append(distro.by_hand_note(fam, os_release, dropped))
    return dataclasses.replace(f, fix=FixPlan(f.fix.summary, tuple(kept), " ".join(notes)))


def repeated_failures(steps, failed: set[tuple[str, ...]], indexes: bool = False) -> list:
    """The steps of a plan that re-run a step the evidence shows just failed, with no change
    before them in the plan (installing the kernel's compiler, headers, a blacklist ... is the
    change that lets the same build succeed)."""
    out = []
    changed = False
    for i, s in enumerate(steps):
        if tuple(s) in failed:
            if not changed:
                out.append(i if indexes else tuple(s))
        else:
            changed = True
    return out
