"""`mlops gpu`'s result as Prometheus metrics (``mlops gpu --prometheus FILE``).

Pure: maps the command's JSON document (docs/gpu.md) to metric families. The names start with
``mlops_gpu_`` so they never clash with DCGM exporter's ``DCGM_FI_*``; the per-GPU labels are
DCGM exporter's own, ``gpu`` (the index) and ``UUID``, so the two join in PromQL
(``... * on(gpu, UUID) group_left ...``). Units are Prometheus base units: bytes (DCGM uses MiB),
ratios 0-1 (DCGM uses percent), watts, degrees Celsius. No process id, user or command in a
label (unbounded): processes are counted per GPU.
"""

from __future__ import annotations

from typing import Any

from mlops_cli.metrics import Family

PREFIX = "mlops_gpu"


def _num(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def build(doc: dict[str, Any], *, exit_code: int, timestamp: float, duration: float | None = None) -> list[Family]:
    """The metric families for one `mlops gpu` sample."""
    gpus = [
        g
        for g in (doc.get("gpus") if isinstance(doc.get("gpus"), list) else [])
        if isinstance(g, dict) and isinstance(g.get("index"), int)
    ]
    driver = doc.get("driver_version") if isinstance(doc.get("driver_version"), str) else None

    count = Family(f"{PREFIX}_devices", "NVIDIA GPUs NVML reports.")
    count.add(len(gpus))
    info = Family(f"{PREFIX}_info", "One per GPU: its model and the driver version as labels; the value is always 1.")
    fams = {
        "total": Family(f"{PREFIX}_memory_total_bytes", "Total GPU memory, in bytes."),
        "used": Family(f"{PREFIX}_memory_used_bytes", "GPU memory in use, in bytes."),
        "free": Family(f"{PREFIX}_memory_free_bytes", "GPU memory free, in bytes."),
        "util": Family(
            f"{PREFIX}_utilization_ratio", "Fraction of the last sample period a kernel ran on the GPU (0-1)."
        ),
        "mutil": Family(
            f"{PREFIX}_memory_utilization_ratio",
            "Fraction of the last sample period GPU memory was read or written (0-1).",
        ),
        "temp": Family(f"{PREFIX}_temperature_celsius", "GPU temperature, in degrees Celsius."),
        "power": Family(f"{PREFIX}_power_watts", "GPU power draw, in watts."),
        "limit": Family(f"{PREFIX}_power_limit_watts", "GPU power limit, in watts."),
        "procs": Family(f"{PREFIX}_processes", "Processes holding memory on the GPU."),
        "proc_mem": Family(
            f"{PREFIX}_processes_memory_used_bytes",
            "GPU memory held by those processes, in bytes (where NVML can attribute it).",
        ),
    }
    for g in gpus:
        ids = {"gpu": str(g["index"]), "UUID": g.get("uuid") if isinstance(g.get("uuid"), str) else None}
        info.add(
            1,
            **ids,
            model_name=g.get("name") if isinstance(g.get("name"), str) else "unknown",
            driver_version=driver or "unknown",
        )
        memory = g.get("memory") if isinstance(g.get("memory"), dict) else {}
        util, mutil = _num(g.get("utilization_percent")), _num(g.get("memory_utilization_percent"))
        values = {
            "total": _num(memory.get("total_bytes")),
            "used": _num(memory.get("used_bytes")),
            "free": _num(memory.get("free_bytes")),
            "util": None if util is None else util / 100,
            "mutil": None if mutil is None else mutil / 100,
            "temp": _num(g.get("temperature_c")),
            "power": _num(g.get("power_w")),
            "limit": _num(g.get("power_limit_w")),
        }
        processes = g.get("processes")
        unavailable = g.get("unavailable") if isinstance(g.get("unavailable"), dict) else {}
        if isinstance(processes, list) and "processes" not in unavailable:
            values["procs"] = len(processes)
            held = [_num(p.get("used_bytes")) for p in processes if isinstance(p, dict)]
            values["proc_mem"] = sum(h for h in held if h is not None)
        for key, value in values.items():
            if value is not None:  # n/a on this board: no sample rather than a made-up 0
                fams[key].add(value, **ids)
    stamp = Family(f"{PREFIX}_timestamp_seconds", "When this sample was taken, in seconds since the Unix epoch.")
    stamp.add(round(timestamp, 3))
    exit_fam = Family(f"{PREFIX}_exit_code", "The exit code `mlops gpu` gave for this sample (0 ok, 3 no GPU).")
    exit_fam.add(int(exit_code))
    took = Family(f"{PREFIX}_duration_seconds", "How long reading the GPUs took, in seconds.")
    if duration is not None:
        took.add(round(duration, 3))
    return [count, info, *fams.values(), stamp, exit_fam, took]
