"""`mlops mem estimate` and `mlops oom-check`: options only; the work is elsewhere.

Both commands take the same setup flags; they are declared once (``_setup_options``)
and attached to each command's signature, so the two can never drift apart.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Optional

import typer

from mlops_cli.options import JsonOpt, SnapshotOpt
from mlops_cli.output import emit

app = typer.Typer(
    add_completion=False,
    help="Memory a training or serving setup needs, term by term.\n\nExample:\n\n  mlops mem estimate Qwen/Qwen2.5-7B --method lora --seq-len 4096",
)
oom_app = typer.Typer(add_completion=False)


@app.callback()
def mem() -> None:
    """Memory a training or serving setup needs, term by term.

    Example:

      mlops mem estimate Qwen/Qwen2.5-7B --method lora --seq-len 4096
    """


def _setup_options() -> dict[str, tuple[Any, Any]]:
    from mlops_cli.mem.flags import setup_options

    O = typer.Option
    return {
        **setup_options(),
        "revision": (str, O("main", "--revision", help="Hub revision of the config (branch, tag or commit).")),
        "json_out": (JsonOpt, False),
    }


def with_setup_options(fn: Callable[..., int]) -> Callable[..., int]:
    """Append the shared setup options to a command's signature; pass them on in `setup`."""
    names = list(_setup_options())

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> int:
        setup = {n: kwargs.pop(n) for n in names}
        return fn(setup=setup, **kwargs)

    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "setup"]
    extra = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=typ)
        for n, (typ, opt) in _setup_options().items()
    ]
    wrapper.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
    del wrapper.__wrapped__
    return wrapper


def _build(setup: dict[str, Any]):
    from mlops_cli.mem.flags import build_setup
    from mlops_cli.units import parse_bytes

    opts = dict(setup)
    revision, json_out = opts.pop("revision"), opts.pop("json_out")
    return build_setup(opts, parse_bytes), revision, json_out


MIN_GPU_MEM = 256 * 1024**2  # below this a --gpu-mem is a typo (a bare '80' is 80 bytes), not a GPU


def _capacity_from_flags(gpu_mem: Optional[str], gpu: Optional[str]) -> Optional[tuple[int, str]]:
    from mlops_cli.errors import UsageError
    from mlops_cli.mem.gpus import gpu_memory, known_gpus
    from mlops_cli.units import parse_bytes

    if gpu_mem is not None and gpu is not None:
        raise UsageError("give --gpu-mem or --gpu, not both")
    if gpu_mem is not None:
        size = parse_bytes(gpu_mem, what="--gpu-mem")
        if size < MIN_GPU_MEM:
            unitless = gpu_mem.strip().replace(".", "", 1).isdigit()
            if size == 0:  # '0', '0GiB': no unit turns that into a GPU
                hint = "give the GPU's memory, e.g. --gpu-mem 24GiB or --gpu-mem 80GiB"
            elif unitless:
                hint = f"give a unit, e.g. --gpu-mem {gpu_mem.strip()}GiB"
            else:
                hint = "write it like 80GiB, 24GB or 81920MiB"
            raise UsageError(f"--gpu-mem {gpu_mem} is {size} bytes: too small for a GPU", hint=hint)
        return size, f"--gpu-mem {gpu_mem}"
    if gpu is not None:
        from mlops_cli.mem.gpu_totals import torch_total

        if not gpu.strip():
            raise UsageError("--gpu is empty", hint="name a GPU, e.g. --gpu H100, or pass --gpu-mem SIZE")
        size = torch_total(gpu) if gpu_memory(gpu) is not None else None
        if size is None:
            raise UsageError(
                f"unknown GPU {gpu!r}", hint="known: " + ", ".join(known_gpus()) + "; or pass --gpu-mem SIZE"
            )
        return size, f"{gpu} (usable total as CUDA reports it)"
    return None


@app.command(
    "estimate",
    short_help="Per-GPU peak memory of a training or serving setup, term by term.",
    help="""Per-GPU peak memory of a training or serving setup, with every term:
weights, gradients, optimizer states, activations, attention scores (seq², only without a fused
kernel), logits/loss buffers, KV cache, CUDA context, allocator reserve. MODEL is a config.json
path or folder, a preset (--list-presets) or a Hugging Face repo id (config fetched and cached;
HF_ENDPOINT and HF_TOKEN respected).

Examples:

  mlops mem estimate Qwen/Qwen2.5-7B --method lora --seq-len 4096 --grad-ckpt

  mlops mem estimate ./my-model/config.json --batch 4 --attn eager --json

  mlops mem estimate meta-llama/Llama-3.1-8B --inference --max-model-len 8192 --gpu H100
""",
)
@with_setup_options
def estimate_cmd(
    model: Optional[str] = typer.Argument(None, help="config.json path or folder, preset, or Hub repo id."),
    gpu_mem: Optional[str] = typer.Option(
        None, "--gpu-mem", metavar="SIZE", help="Serving: GPU memory for KV capacity / concurrency (e.g. 80GiB)."
    ),
    gpu: Optional[str] = typer.Option(None, "--gpu", metavar="NAME", help="Serving: a known GPU, e.g. H100."),
    list_presets: bool = typer.Option(False, "--list-presets", help="List built-in model presets and exit."),
    setup: Optional[dict] = None,
) -> int:
    from mlops_cli.errors import UsageError
    from mlops_cli.mem.estimate import estimate
    from mlops_cli.mem.models import resolve_model
    from mlops_cli.mem.report import EstimateReport
    from mlops_cli.output import emit_json

    s, revision, json_out = _build(setup or {})
    if list_presets:
        from mlops_cli.mem.presets import preset_names

        names = preset_names()
        if json_out:
            emit_json({"presets": names})
        else:
            print("\n".join(names))
        return 0
    if not model:
        raise UsageError("missing MODEL", hint="mlops mem estimate MODEL (see --help)")
    cap = _capacity_from_flags(gpu_mem, gpu)
    est = estimate(resolve_model(model, revision), s, cap[0] if cap else None, gpu or "")
    return emit(EstimateReport(est), json_out)


@oom_app.command(
    help="""Will this setup fit? Estimates the per-GPU peak (same flags as
'mlops mem estimate'), compares it with the free memory of this machine's GPUs (NVML) or with
--gpu-mem / --gpu, and exits 0 when it fits, 1 when it does not. When it does not fit it lists
remedies, cheapest first, each with its new estimate and its cost, plus the largest batch and
sequence length that fit as configured. No GPU and no --gpu-mem/--gpu: exit 3.

Examples:

  mlops oom-check Qwen/Qwen2.5-7B --method lora --gpu-mem 24GiB

  mlops oom-check meta-llama/Llama-3.1-8B --batch 8 --seq-len 4096 --gpu H100 --json

  mlops oom-check ./config.json --inference --max-model-len 32768      # against this GPU's free memory
"""
)
@with_setup_options
def oom_check(
    model: str = typer.Argument(..., help="config.json path or folder, preset, or Hub repo id."),
    gpu_mem: Optional[str] = typer.Option(None, "--gpu-mem", metavar="SIZE", help="Memory per GPU, e.g. 80GiB."),
    gpu: Optional[str] = typer.Option(None, "--gpu", metavar="NAME", help="A known GPU (total memory), e.g. H100."),
    snapshot: SnapshotOpt = None,
    setup: Optional[dict] = None,
) -> int:
    from mlops_cli.mem.estimate import estimate
    from mlops_cli.mem.models import resolve_model
    from mlops_cli.mem.remedies import advise
    from mlops_cli.mem.report import OomReport

    s, revision, json_out = _build(setup or {})
    m = resolve_model(model, revision)
    cap = _capacity_from_flags(gpu_mem, gpu)
    gpus_available, free_by_gpu = s.gpus, None
    if cap is None:
        capacity, origin, free_by_gpu = _free_memory_from_nvml(snapshot, s.gpus)
        cap, gpus_available = (capacity, origin), len(free_by_gpu)
    est = estimate(m, s, cap[0], gpu or "")
    advice = advise(m, s, cap[0], gpus_available, free_by_gpu, gpu or "")
    return emit(OomReport(est, cap[0], cap[1], advice), json_out)


def _free_memory_from_nvml(snapshot: Optional[str], gpus_wanted: int) -> tuple[int, str, list[int]]:
    """The free memory of the GPUs this run would use (the `gpus_wanted` with most free memory),
    its label, and every GPU's free bytes (for remedies that use more GPUs)."""
    from mlops_cli.errors import NotApplicable
    from mlops_cli.gpu.status import collect, open_source

    try:
        source, origin = open_source(snapshot, None)
    except NotApplicable as exc:
        raise NotApplicable(
            exc.message.replace("no NVIDIA GPU available", "no GPU to check against"),
            hint="pass --gpu-mem SIZE (e.g. --gpu-mem 80GiB) or --gpu NAME (e.g. --gpu H100)",
        ) from None
    status = collect(source, origin)
    free = sorted(((d.free_bytes, d.index) for d in status.devices if d.free_bytes is not None), reverse=True)
    if not free:
        raise NotApplicable(
            "NVML reports no GPU with readable free memory",
            hint="pass --gpu-mem SIZE (e.g. --gpu-mem 80GiB) or --gpu NAME",
        )
    if gpus_wanted > len(free):
        raise NotApplicable(
            f"--gpus {gpus_wanted} but NVML shows {len(free)} GPU(s) here",
            hint="lower --gpus, or pass --gpu-mem SIZE to check against another machine",
        )
    chosen = free[:gpus_wanted]
    capacity, index = chosen[-1]
    where = "NVML" if origin == "nvml" else f"snapshot {origin}"
    label = (
        f"GPU {index} free memory ({where})"
        if gpus_wanted == 1
        else f"least free of GPUs {', '.join(str(i) for _, i in chosen)} ({where})"
    )
    return capacity, label, [b for b, _ in free]
