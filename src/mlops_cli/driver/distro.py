"""Which distribution family a machine is, and its own tools for the steps a plan holds. Pure.

The fix plans are written in Debian/Ubuntu terms (apt-get, update-initramfs, linux-headers-K).
On another family those commands are wrong: either the family's own tool does the same thing
(headers, initramfs), or the step is left to a person (``translate`` returns None), never run.

Family, from the evidence in this order: the package database that answered (dpkg, rpm,
pacman), then ``/etc/os-release`` (``ID``, ``ID_LIKE``). Appliances whose package manager is
switched off (TrueNAS SCALE) and rpm-ostree systems (``/run/ostree-booted``) are their own
families: nothing is installed on them by a plan. Without any evidence the family is
``unknown`` and plans stay as they were (Debian terms).
"""

from __future__ import annotations

import re

DEBIAN, RHEL, SUSE, ARCH, APPLIANCE, OSTREE, OTHER, UNKNOWN = (
    "debian",
    "rhel",
    "suse",
    "arch",
    "appliance",
    "ostree",
    "other",
    "unknown",
)

# Programs that exist only on Debian-family systems.
DEBIAN_ONLY = frozenset(
    {"apt-get", "apt", "apt-mark", "dpkg", "update-initramfs", "ubuntu-drivers", "dpkg-reconfigure"}
)
_ID_FAMILY = (
    (re.compile(r"\b(debian|ubuntu|linuxmint|pop|raspbian|kali|elementary|zorin)\b"), DEBIAN),
    (re.compile(r"\b(rhel|centos|fedora|rocky|almalinux|ol|amzn|scientific|nobara)\b"), RHEL),
    (re.compile(r"\b(suse|opensuse|opensuse-leap|opensuse-tumbleweed|sles|sled|opensuse-microos)\b"), SUSE),
    (re.compile(r"\b(arch|manjaro|endeavouros|cachyos|garuda|steamos)\b"), ARCH),
)
_APPLIANCE_KERNEL = re.compile(r"truenas", re.I)
_TOOL = {RHEL: "dnf", SUSE: "zypper", ARCH: "pacman"}


def family(
    os_release: dict[str, str], dpkg: bool, rpm: bool, pacman: bool, kernel: str | None = None, ostree: bool = False
) -> str:
    if kernel and _APPLIANCE_KERNEL.search(kernel):
        return APPLIANCE
    if ostree:  # rpm-ostree: packages change through the image, never with dnf on the host
        return OSTREE
    ids = " ".join([os_release.get("ID", ""), os_release.get("ID_LIKE", "")]).lower()
    by_id = next((fam for rx, fam in _ID_FAMILY if rx.search(ids)), OTHER if ids.strip() else UNKNOWN)
    if dpkg:
        return DEBIAN
    if rpm:
        return SUSE if by_id == SUSE else RHEL
    if pacman:
        return ARCH
    return by_id


def package_tool(fam: str, os_release: dict[str, str]) -> str | None:
    """``yum`` on EL7 (no dnf there), else the family's tool; None where there is none to use."""
    if fam == RHEL and os_release.get("VERSION_ID", "").split(".")[0] == "7" and os_release.get("ID") != "fedora":
        return "yum"
    return _TOOL.get(fam)


def headers_package(fam: str, kernel: str) -> str | None:
    """The package holding the build tree of ``kernel`` in that family."""
    if fam == RHEL:
        return f"kernel-devel-{kernel}"
    if fam == SUSE:
        flavour = kernel.rsplit("-", 1)[-1] if "-" in kernel else "default"
        return f"kernel-{flavour}-devel" if flavour.isalpha() else "kernel-default-devel"
    if fam == ARCH:
        for flavour in ("lts", "zen", "hardened", "rt"):
            if re.search(rf"-{flavour}\d*(?:-|$)", kernel):
                return f"linux-{flavour}-headers"
        return "linux-headers"
    return None


def translate(argv: tuple[str, ...], fam: str, os_release: dict[str, str]) -> tuple[str, ...] | None:
    """The same step in the family's own tools; None when it must be left to a person.
    Steps that are not Debian-only come back unchanged."""
    prog = argv[0] if argv else ""
    if prog not in DEBIAN_ONLY or fam in (DEBIAN, UNKNOWN):
        return argv
    tool = package_tool(fam, os_release)
    if prog == "update-initramfs":
        if fam in (RHEL, SUSE):
            return ("dracut", "-f", "--regenerate-all")
        if fam == ARCH:
            return ("mkinitcpio", "-P")
        return None
    if prog == "apt-get" and "install" in argv and tool:
        names = [a for a in argv[argv.index("install") + 1 :] if not a.startswith("-")]
        kernels = [n[len("linux-headers-") :] for n in names if n.startswith("linux-headers-")]
        if names and len(kernels) == len([n for n in names if n.startswith("linux-headers")]) and kernels:
            pkgs = sorted({p for k in kernels if (p := headers_package(fam, k))})
            if not pkgs:
                return None
            if tool == "pacman":
                return ("pacman", "-S", "--needed", "--noconfirm", *pkgs)
            if tool == "zypper":
                return ("zypper", "--non-interactive", "install", *pkgs)
            return (tool, "install", "-y", *pkgs)
    return None


def by_hand_note(fam: str, os_release: dict[str, str], dropped: list[tuple[str, ...]]) -> str:
    name = os_release.get("PRETTY_NAME") or os_release.get("NAME") or fam
    tool = package_tool(fam, os_release)
    how = f"its own package manager ({tool})" if tool else "the way this system installs its driver"
    cmds = "; ".join(" ".join(a) for a in dropped[:4])
    return f"Not run here: {cmds} are Debian/Ubuntu commands and this is {name}. Do the equivalent with {how}, by hand."
