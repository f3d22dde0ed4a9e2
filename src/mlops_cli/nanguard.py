"""Stop a training run at its first non-finite loss or gradient norm, and say where it was.

A small, dependency-light helper for the training script itself (the other half of
``mlops train-doctor``). Importing it needs only the standard library: torch, transformers and
lightning are imported when you use the part that needs them.

Plain loop::

    from mlops_cli.nanguard import NanGuard
    guard = NanGuard("nan-guard.json")
    for step, (idx, x, y) in enumerate(loader):
        loss = model(x, y); loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if guard.check(step=step, loss=loss, grad_norm=norm, lr=opt.param_groups[0]["lr"],
                       batch_indices=idx, model=model):
            break                      # the record is in nan-guard.json
        opt.step(); opt.zero_grad()

HF Trainer: ``Trainer(..., callbacks=[nanguard.hf_callback("nan-guard.json")])``.
Lightning: ``Trainer(callbacks=[nanguard.lightning_callback("nan-guard.json")])``.

On the first non-finite value it writes one JSON record (step, epoch, loss, grad norm, lr,
the batch's data indices when it has them, parameter and gradient norm summaries with the
names of non-finite tensors) and prints one line that ``mlops train-doctor`` reads::

    mlops-nanguard: non-finite loss at step 123 (loss=nan, grad_norm=inf, lr=0.0002); record: nan-guard.json

Under fp16 mixed precision a non-finite *gradient* on its own is a step the loss scaler skips
(normal); the guard then acts on the loss only.
"""

from __future__ import annotations

import datetime
import math
import os
import sys
from collections.abc import Callable
from typing import Any, Optional

__all__ = ["NanGuard", "NonFiniteError", "hf_callback", "lightning_callback"]

RECORD_VERSION = 1
MAX_NAMES = 20


class NonFiniteError(RuntimeError):
    """Raised by ``NanGuard.check`` when ``raise_on_nan=True``."""


def _value(x: Any) -> Optional[float]:
    """A float from a Python number, a 0-d tensor or a numpy scalar; None when absent."""
    if x is None:
        return None
    try:
        if hasattr(x, "detach"):
            x = x.detach()
            if getattr(x, "numel", lambda: 1)() != 1:
                x = x.float().sum()
        return float(x)
    except (TypeError, ValueError, RuntimeError):
        return None


def _finite(x: Optional[float]) -> bool:
    return x is None or math.isfinite(x)


def _json_number(x: Optional[float]) -> Any:
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _indices(batch_indices: Any) -> Optional[list]:
    if batch_indices is None:
        return None
    try:
        if hasattr(batch_indices, "tolist"):
            batch_indices = batch_indices.tolist()
        out = list(batch_indices) if isinstance(batch_indices, (list, tuple)) else [batch_indices]
    except TypeError:
        return None
    return [v if isinstance(v, (int, float, str)) else str(v) for v in out[:4096]]


def _rank() -> Optional[int]:
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        v = os.environ.get(var)
        if v is not None and v.isdigit():
            return int(v)
    return None


def tensor_summary(model: Any, top_k: int = 10) -> dict:
    """Norms of the parameters and their gradients, and which of them are not finite."""
    import torch

    params = grads = 0.0
    n_params = 0
    bad_params: list[str] = []
    bad_grads: list[str] = []
    largest: list[tuple[float, str]] = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            n_params += p.numel()
            pn = float(p.detach().float().norm())
            if math.isfinite(pn):
                params += pn * pn
            elif len(bad_params) < MAX_NAMES:
                bad_params.append(name)
            if p.grad is None:
                continue
            gn = float(p.grad.detach().float().norm())
            if math.isfinite(gn):
                grads += gn * gn
                largest.append((gn, name))
            elif len(bad_grads) < MAX_NAMES:
                bad_grads.append(name)
    largest.sort(reverse=True)
    return {
        "parameters": {"count": n_params, "norm": math.sqrt(params), "non_finite": bad_params},
        "gradients": {
            "norm_of_finite": math.sqrt(grads),
            "non_finite": bad_grads,
            "largest": [[name, norm] for norm, name in largest[:top_k]],
        },
    }


class NanGuard:
    """Watches loss and grad norm; on the first non-finite value writes a record and says stop."""

    def __init__(
        self,
        path: str | os.PathLike = "nan-guard.json",
        *,
        stop: bool = True,
        raise_on_nan: bool = False,
        grads_only_when_finite_loss: bool = False,
        top_k: int = 10,
        log: Optional[Callable[[str], None]] = None,
        framework: str = "loop",
    ) -> None:
        rank = _rank()
        path = os.fspath(path)
        if rank:  # one record per rank: rank 0 keeps the plain name
            root, ext = os.path.splitext(path)
            path = f"{root}.rank{rank}{ext or '.json'}"
        self.path = path
        self.stop = stop
        self.raise_on_nan = raise_on_nan
        self.fp16 = grads_only_when_finite_loss
        self.top_k = top_k
        self.framework = framework
        self.rank = rank
        self.record: Optional[dict] = None
        self.skipped_grad_steps = 0
        self._log = log if log is not None else (lambda line: print(line, file=sys.stderr, flush=True))

    @property
    def triggered(self) -> bool:
        return self.record is not None

    def check(
        self,
        *,
        step: int,
        loss: Any = None,
        grad_norm: Any = None,
        lr: Any = None,
        batch_indices: Any = None,
        epoch: Any = None,
        model: Any = None,
        extra: Optional[dict] = None,
    ) -> bool:
        """True when the run should stop (a non-finite loss, or grad norm; see fp16 note above)."""
        if self.record is not None:
            return self.stop
        loss_v, grad_v = _value(loss), _value(grad_norm)
        what = []
        if not _finite(loss_v):
            what.append("loss")
        if not _finite(grad_v):
            if self.fp16 and _finite(loss_v):
                self.skipped_grad_steps += 1  # the fp16 scaler skips this step itself
            else:
                what.append("grad_norm")
        if not what:
            return False
        rec: dict[str, Any] = {
            "version": RECORD_VERSION,
            "event": "non_finite",
            "what": what,
            "step": int(step),
            "epoch": _value(epoch),
            "loss": _json_number(loss_v),
            "grad_norm": _json_number(grad_v),
            "lr": _value(lr),
            "batch_indices": _indices(batch_indices),
            "rank": self.rank,
            "framework": self.framework,
            "pid": os.getpid(),
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        if extra:
            rec["extra"] = {
                str(k): v if isinstance(v, (int, float, str, bool, type(None))) else str(v) for k, v in extra.items()
            }
        if model is not None:
            try:
                rec.update(tensor_summary(model, self.top_k))
            except Exception as exc:  # noqa: BLE001 - the record matters more than the summary
                rec["summary_error"] = f"{type(exc).__name__}: {exc}"
        self.record = rec
        self._write(rec)
        lr_text = f", lr={rec['lr']:g}" if isinstance(rec["lr"], float) else ""
        self._log(
            f"mlops-nanguard: non-finite {' and '.join(what)} at step {rec['step']} "
            f"(loss={rec['loss']}, grad_norm={rec['grad_norm']}{lr_text}); record: {self.path}"
        )
        if self.raise_on_nan:
            raise NonFiniteError(f"non-finite {' and '.join(what)} at step {rec['step']}; record: {self.path}")
        return self.stop

    def _write(self, rec: dict) -> None:
        from mlops_cli.files import write_json

        write_json(self.path, rec, what="nan-guard record")


def _hf_base():
    from transformers import TrainerCallback

    return TrainerCallback


def hf_callback(path: str | os.PathLike = "nan-guard.json", **kwargs: Any):
    """A ``transformers.TrainerCallback``: checks every logged record (HF hides a NaN loss behind
    ``logging_nan_inf_filter``, so its grad_norm is checked too; a 0.0 loss with a non-finite
    grad norm is the all-NaN window) and, outside fp16, every step's gradients."""
    base = _hf_base()

    class HFNanGuard(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.guard = NanGuard(path, framework="transformers", **kwargs)

        def _fp16(self, args) -> bool:
            return bool(getattr(args, "fp16", False))

        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            if self._fp16(args) or model is None or self.guard.triggered:
                return control
            import torch

            grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
            if not grads:
                return control
            norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))
            if not math.isfinite(norm):
                lr = None
                opt = kw.get("optimizer")
                if opt is not None and opt.param_groups:
                    lr = opt.param_groups[0].get("lr")
                if self.guard.check(step=state.global_step + 1, grad_norm=norm, lr=lr, epoch=state.epoch, model=model):
                    control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, model=None, **kw):
            logs = logs or {}
            if "loss" not in logs and "grad_norm" not in logs:
                return control
            self.guard.fp16 = self._fp16(args)
            if self.guard.check(
                step=state.global_step,
                loss=logs.get("loss"),
                grad_norm=logs.get("grad_norm"),
                lr=logs.get("learning_rate"),
                epoch=state.epoch,
                model=model,
            ):
                control.should_training_stop = True
            return control

    return HFNanGuard()


def _lightning_base():
    try:
        from lightning.pytorch import Callback
    except ImportError:
        from pytorch_lightning import Callback
    return Callback


def lightning_callback(path: str | os.PathLike = "nan-guard.json", *, index_key: str = "idx", **kwargs: Any):
    """A Lightning ``Callback``: checks the loss ``training_step`` returned (before any logging
    average) with the batch's ``index_key`` entries as the data indices."""
    base = _lightning_base()

    class LightningNanGuard(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.guard = NanGuard(path, framework="lightning", **kwargs)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            indices = batch.get(index_key) if isinstance(batch, dict) else None
            lr = None
            if trainer.optimizers and trainer.optimizers[0].param_groups:
                lr = trainer.optimizers[0].param_groups[0].get("lr")
            self.guard.fp16 = "16" in str(getattr(trainer, "precision", "")) and "bf16" not in str(trainer.precision)
            if self.guard.check(
                step=trainer.global_step,
                loss=loss,
                lr=lr,
                batch_indices=indices,
                epoch=trainer.current_epoch,
                model=pl_module,
                extra={"batch_idx": batch_idx},
            ):
                trainer.should_stop = True

    return LightningNanGuard()
