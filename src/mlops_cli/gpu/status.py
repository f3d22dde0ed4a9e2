"""What is on the GPUs now: collected through the NVML seam, rendered both ways.

A field NVML cannot give (NVML_ERROR_NOT_SUPPORTED on a GeForce board, memory on a
unified-memory GB10, a value absent from a snapshot) is kept as ``None`` with its
reason in ``unavailable`` and shown as n/a; it never stops the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from rich.console import Console
from rich.table import Table

from mlops_cli.gpu.nvml import NvmlCallError, NvmlSource

MiB = 1024**2


@dataclass
class GpuProcess:
    pid: int
    used_bytes: Optional[int]
    user: Optional[str]
    command: Optional[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "user": self.user,
            "command": self.command,
            "used_bytes": self.used_bytes,
            "used_mib": None if self.used_bytes is None else round(self.used_bytes / MiB),
        }


@dataclass
class GpuDevice:
    index: int
    name: Optional[str]
    uuid: Optional[str]
    total_bytes: Optional[int]
    used_bytes: Optional[int]
    free_bytes: Optional[int]
    utilization_percent: Optional[int]
    memory_utilization_percent: Optional[int]
    temperature_c: Optional[int]
    power_w: Optional[float]
    power_limit_w: Optional[float]
    processes: list[GpuProcess] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "memory": {"total_bytes": self.total_bytes, "used_bytes": self.used_bytes, "free_bytes": self.free_bytes},
            "utilization_percent": self.utilization_percent,
            "memory_utilization_percent": self.memory_utilization_percent,
            "temperature_c": self.temperature_c,
            "power_w": self.power_w,
            "power_limit_w": self.power_limit_w,
            "processes": [p.to_json() for p in self.processes],
            "unavailable": self.unavailable,
        }


@dataclass
class GpuStatus:
    source: str
    driver_version: Optional[str]
    devices: list[GpuDevice]
    exit_code: int = 0
    # Machine-wide answers NVML could not give (driver_version, device_count) -> NVML error name.
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "driver_version": self.driver_version,
            "gpu_count": len(self.devices),
            "gpus": [d.to_json() for d in self.devices],
            "unavailable": self.unavailable,
        }

    def render(self, console: Console) -> None:
        title = f"{len(self.devices)} GPU(s), driver {self.driver_version or 'n/a'}"
        if self.source != "nvml":
            title += f" (replayed from {self.source})"
        table = Table(title=title, title_justify="left")
        for col in ("GPU", "Name", "Memory used / total", "Free", "Util", "Temp", "Power"):
            table.add_column(col, justify="right" if col not in ("Name",) else "left")
        for d in self.devices:
            used = f"{_mib(d.used_bytes)} / {_mib(d.total_bytes)}"
            power = f"{_num(d.power_w, 'W')} / {_num(d.power_limit_w, 'W')}"
            table.add_row(
                str(d.index),
                d.name or "n/a",
                used,
                _mib(d.free_bytes),
                _num(d.utilization_percent, "%"),
                _num(d.temperature_c, "°C"),
                power,
            )
        console.print(table)
        if not self.devices:
            console.print("NVML reports no NVIDIA GPU.", markup=False)
        procs = [(d.index, p) for d in self.devices for p in d.processes]
        if procs:
            pt = Table(title="Processes holding GPU memory", title_justify="left")
            for col in ("GPU", "PID", "User", "Memory", "Command"):
                pt.add_column(col, justify="right" if col in ("GPU", "PID", "Memory") else "left")
            for index, p in procs:
                pt.add_row(str(index), str(p.pid), p.user or "n/a", _mib(p.used_bytes), p.command or "n/a")
            console.print(pt)
        else:
            console.print("No processes are holding GPU memory (or NVML cannot see them from here).")
        notes = sorted(
            {f"{k}: {v}" for d in self.devices for k, v in d.unavailable.items()}
            | {f"{k}: {v}" for k, v in self.unavailable.items()}
        )
        if notes:
            console.print("n/a = not available from NVML: " + "; ".join(notes), markup=False)


def _mib(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value / MiB:,.0f} MiB"


def _num(value: Optional[float], unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}{' ' if unit == 'W' else ''}{unit}"


def _try(source: NvmlSource, key: str, unavailable: dict[str, str], label: str) -> Any:
    try:
        return source.call(key)
    except NvmlCallError as exc:
        unavailable[label] = exc.code
        return None


def collect(source: NvmlSource, origin: str = "nvml") -> GpuStatus:
    """Ask the seam for everything `mlops gpu` shows."""
    misc: dict[str, str] = {}
    driver = _try(source, "driver_version", misc, "driver_version")
    count = _try(source, "device_count", misc, "device_count") or 0
    devices = []
    for i in range(int(count)):
        un: dict[str, str] = {}
        name = _try(source, f"name/{i}", un, "name")
        uuid = _try(source, f"uuid/{i}", un, "uuid")
        mem = _try(source, f"memory/{i}", un, "memory") or {}
        util = _try(source, f"utilization/{i}", un, "utilization") or {}
        temp = _try(source, f"temperature/{i}", un, "temperature_c")
        power = _try(source, f"power_usage/{i}", un, "power_w")
        limit = _try(source, f"power_limit/{i}", un, "power_limit_w")
        processes = []
        for p in _try(source, f"processes/{i}", un, "processes") or []:
            info = _try(source, f"process/{p['pid']}", {}, "process") or {}
            processes.append(GpuProcess(int(p["pid"]), p.get("used_bytes"), info.get("user"), info.get("command")))
        processes.sort(key=lambda p: -(p.used_bytes or 0))
        devices.append(
            GpuDevice(
                index=i,
                name=name,
                uuid=uuid,
                total_bytes=mem.get("total"),
                used_bytes=mem.get("used"),
                free_bytes=mem.get("free"),
                utilization_percent=util.get("gpu"),
                memory_utilization_percent=util.get("memory"),
                temperature_c=temp,
                power_w=None if power is None else power / 1000,
                power_limit_w=None if limit is None else limit / 1000,
                processes=processes,
                unavailable=un,
            )
        )
    # NVML answered but shows no GPU (all unbound or fallen off the bus, or it could not count
    # them): the report is still printed, and the exit code says "no NVIDIA GPU" (3) as the spec does.
    return GpuStatus(origin, driver, devices, exit_code=0 if devices else 3, unavailable=misc)


def open_source(snapshot: Optional[str], save_snapshot: Optional[str]) -> tuple[NvmlSource, str]:
    """The NVML source for a command: a replayed snapshot or live NVML (optionally recorded)."""
    from mlops_cli.gpu.nvml import LiveNvml, RecordingNvml, SnapshotNvml

    if snapshot and save_snapshot is not None:
        from mlops_cli.errors import UsageError

        raise UsageError("give --snapshot FILE (replay) or --save-snapshot FILE (record), not both")
    if save_snapshot is not None:
        from mlops_cli.files import check_writable

        check_writable(save_snapshot, what="snapshot")  # before NVML is asked anything
    if snapshot:
        return SnapshotNvml.load(snapshot), snapshot
    live: NvmlSource = LiveNvml()
    if save_snapshot is not None:
        import platform
        from datetime import datetime, timezone

        live = RecordingNvml(
            live,
            {
                "source": {
                    "kind": "nvml",
                    "host": platform.node(),
                    "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            },
        )
    return live, "nvml"
