"""The NVML seam: one small interface, a live implementation, recording and replay.

Everything `mlops gpu` and `mlops oom-check` learn about the GPUs goes through
``NvmlSource.call(key)``. ``LiveNvml`` asks the NVIDIA Management Library (through
``pynvml`` from nvidia-ml-py, imported only here and only when needed); ``RecordingNvml``
wraps another source and writes down every answer, error included; ``SnapshotNvml``
replays such a recording. The collector above the seam is the same for all three.

Call keys and answers (values are what NVML returned, in NVML's units):
  driver_version -> str              device_count -> int
  name/I -> str                      uuid/I -> str
  memory/I -> {total, used, free}    (bytes, nvmlDeviceGetMemoryInfo)
  utilization/I -> {gpu, memory}     (percent, nvmlDeviceGetUtilizationRates)
  temperature/I -> int               (°C, NVML_TEMPERATURE_GPU)
  power_usage/I -> int               (mW)      power_limit/I -> int (mW, enforced)
  processes/I -> [{pid, used_bytes}] (compute and graphics processes; used_bytes null
                                      when NVML reports NVML_VALUE_NOT_AVAILABLE)
  process/PID -> {user, command}     (from /proc: the owner and command line)
A call that fails raises ``NvmlCallError(code)`` with NVML's error name without the
``NVML_ERROR_`` prefix: NOT_SUPPORTED, NO_PERMISSION, GPU_IS_LOST, ... A snapshot answers
NOT_RECORDED for a key it does not hold.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from mlops_cli.errors import NotApplicable, UsageError

SNAPSHOT_FORMAT = "mlops-nvml/1"
NVML_VALUE_NOT_AVAILABLE = 0xFFFFFFFFFFFFFFFF  # unsigned long long -1


class NvmlCallError(Exception):
    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class NvmlSource(Protocol):
    def call(self, key: str) -> Any: ...


def _error_name(exc: Exception) -> str:
    import pynvml

    value = getattr(exc, "value", None)
    for name in dir(pynvml):
        if name.startswith("NVML_ERROR_") and getattr(pynvml, name) == value:
            return name[len("NVML_ERROR_") :]
    return f"NVML_ERROR_{value}"


class LiveNvml:
    """Asks the real NVML. No library or no driver -> NotApplicable (exit 3)."""

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError:
            raise NotApplicable(
                "NVML is not available: the nvidia-ml-py package is not installed",
                hint="pip install nvidia-ml-py, or pass --snapshot FILE",
            ) from None
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            code = _error_name(exc)
            reason = {
                "LIBRARY_NOT_FOUND": "the NVML library (libnvidia-ml.so.1) was not found: no NVIDIA driver here",
                "DRIVER_NOT_LOADED": "the NVIDIA driver is not loaded",
                "NO_PERMISSION": "no permission to talk to the NVIDIA driver",
            }.get(code, f"NVML could not start ({code})")
            raise NotApplicable(
                f"no NVIDIA GPU available: {reason}",
                hint="run 'mlops driver-check' on a GPU machine; --snapshot FILE replays a recording",
            ) from None
        self._handles: dict[int, Any] = {}

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = self._nvml.nvmlDeviceGetHandleByIndex(index)
        return self._handles[index]

    def call(self, key: str) -> Any:
        nv = self._nvml
        what, _, arg = key.partition("/")
        try:
            if what == "driver_version":
                return _text(nv.nvmlSystemGetDriverVersion())
            if what == "device_count":
                return int(nv.nvmlDeviceGetCount())
            if what == "process":
                return _process_info(int(arg))
            h = self._handle(int(arg))
            if what == "name":
                return _text(nv.nvmlDeviceGetName(h))
            if what == "uuid":
                return _text(nv.nvmlDeviceGetUUID(h))
            if what == "memory":
                m = nv.nvmlDeviceGetMemoryInfo(h)
                return {"total": int(m.total), "used": int(m.used), "free": int(m.free)}
            if what == "utilization":
                u = nv.nvmlDeviceGetUtilizationRates(h)
                return {"gpu": int(u.gpu), "memory": int(u.memory)}
            if what == "temperature":
                return int(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
            if what == "power_usage":
                return int(nv.nvmlDeviceGetPowerUsage(h))
            if what == "power_limit":
                return int(nv.nvmlDeviceGetEnforcedPowerLimit(h))
            if what == "processes":
                procs = list(nv.nvmlDeviceGetComputeRunningProcesses(h))
                try:
                    procs += list(nv.nvmlDeviceGetGraphicsRunningProcesses(h))
                except nv.NVMLError:
                    pass
                seen: dict[int, Any] = {}
                for p in procs:
                    used = getattr(p, "usedGpuMemory", None)
                    used = None if used in (None, NVML_VALUE_NOT_AVAILABLE) else int(used)
                    seen.setdefault(int(p.pid), used)
                return [{"pid": pid, "used_bytes": used} for pid, used in seen.items()]
        except nv.NVMLError as exc:
            raise NvmlCallError(_error_name(exc)) from None
        raise KeyError(key)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _process_info(pid: int) -> dict[str, Any]:
    """Owner and command line of a process, from /proc (outside NVML, recorded alongside)."""
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        raise NvmlCallError("NOT_FOUND") from None
    except PermissionError:
        raise NvmlCallError("NO_PERMISSION") from None
    try:
        import pwd

        user = pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        user = str(uid)
    command = " ".join(part for part in raw.decode(errors="replace").split("\0") if part)
    return {"user": user, "command": command or None}


class RecordingNvml:
    """Wraps a source and keeps every answer, so replaying the recording answers the same."""

    def __init__(self, inner: NvmlSource, meta: dict[str, Any] | None = None):
        self.inner = inner
        self.calls: dict[str, Any] = {}
        self.meta = meta or {}

    def call(self, key: str) -> Any:
        try:
            value = self.inner.call(key)
        except NvmlCallError as exc:
            self.calls[key] = {"error": exc.code}
            raise
        self.calls[key] = {"value": value}
        return value

    def to_json(self) -> dict[str, Any]:
        return {"format": SNAPSHOT_FORMAT, **self.meta, "calls": self.calls}

    def save(self, path: str | Path) -> None:
        from mlops_cli.host import save_snapshot_document

        save_snapshot_document(path, self.to_json(), what="NVML snapshot")


class SnapshotNvml:
    """Replays a recording; a key it does not hold answers NOT_RECORDED."""

    def __init__(self, doc: dict[str, Any], origin: str = "snapshot"):
        self.calls = doc["calls"]
        self.meta = {k: v for k, v in doc.items() if k not in ("calls", "format")}
        self.origin = origin

    @classmethod
    def load(cls, path: str | Path) -> SnapshotNvml:
        from mlops_cli.host import load_snapshot_document

        doc = load_snapshot_document(path, what="NVML snapshot")
        if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT or not isinstance(doc.get("calls"), dict):
            raise UsageError(f'{path} is not an NVML snapshot (expected "format": "{SNAPSHOT_FORMAT}" and "calls")')
        return cls(doc, origin=str(path))

    def call(self, key: str) -> Any:
        entry = self.calls.get(key)
        if entry is None:
            raise NvmlCallError("NOT_RECORDED")
        if not isinstance(entry, dict) or not ("value" in entry or "error" in entry):
            self._malformed(key, 'expected {"value": ...} or {"error": "NAME"}')
        if "error" in entry:
            raise NvmlCallError(str(entry["error"]))
        value = entry.get("value")
        problem = _shape_problem(key, value)
        if problem:
            self._malformed(key, problem)
        return value

    def _malformed(self, key: str, problem: str) -> None:
        raise UsageError(
            f"NVML snapshot {self.origin}: malformed answer for {key!r}: {problem}",
            hint="a snapshot is the file written by 'mlops gpu --save-snapshot FILE' (keys in docs/gpu.md)",
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _fields(value: Any, names: tuple[str, ...], what: str) -> str | None:
    if not isinstance(value, dict):
        return f"expected an object with {', '.join(names)} ({what})"
    bad = [n for n in names if value.get(n) is not None and not _is_int(value.get(n))]
    return f"{', '.join(bad)} must be whole numbers ({what})" if bad else None


# Plausibility bounds for replayed values (a hostile or corrupted snapshot must not hang the
# report or make oom-check say "fits"): NVML enumerates at most a few dozen GPUs per node
# (NVSwitch systems: 8-72); no GPU has a PiB of memory; temperatures are in °C, power in mW.
MAX_DEVICES = 1024
MAX_MEMORY_BYTES = 2**50
SANE_MAX = {"temperature": 300, "power_usage": 10**7, "power_limit": 10**7}


def _memory_problem(value: dict[str, Any]) -> str | None:
    total, used, free = value.get("total"), value.get("used"), value.get("free")
    for name, n in (("total", total), ("used", used), ("free", free)):
        if n is not None and not 0 <= n <= MAX_MEMORY_BYTES:
            return f"{name} = {n} bytes is out of range (0 to 1 PiB)"
    if total is not None and used is not None and used > total:
        return f"used ({used}) is more than total ({total})"
    if total is not None and free is not None and free > total:
        return f"free ({free}) is more than total ({total})"
    return None


def _shape_problem(key: str, value: Any) -> str | None:
    """What is wrong with a replayed value, by the key's kind (the table at the top); None if fine."""
    what = key.partition("/")[0]
    if what in ("driver_version", "name", "uuid"):
        return None if isinstance(value, str) else "expected a string"
    if what in ("device_count", "temperature", "power_usage", "power_limit"):
        if not (_is_int(value) and value >= 0):
            return "expected a whole number"
        limit = MAX_DEVICES if what == "device_count" else SANE_MAX[what]
        return None if value <= limit else f"{value} is out of range (at most {limit})"
    if what == "memory":
        return _fields(value, ("total", "used", "free"), "bytes") or _memory_problem(value)
    if what == "utilization":
        return _fields(value, ("gpu", "memory"), "percent")
    if what == "processes":
        ok = isinstance(value, list) and all(
            isinstance(p, dict) and _is_int(p.get("pid")) and (p.get("used_bytes") is None or _is_int(p["used_bytes"]))
            for p in value
        )
        return None if ok else 'expected a list of {"pid": N, "used_bytes": N or null}'
    if what == "process":
        ok = isinstance(value, dict) and all(
            value.get(n) is None or isinstance(value.get(n), str) for n in ("user", "command")
        )
        return None if ok else 'expected {"user": "...", "command": "..."}'
    return None
