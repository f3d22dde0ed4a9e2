"""mlops_cli.nanguard with real torch, transformers and lightning on tiny CPU models; and
train-doctor reading what those real runs printed.

Each training runs in a child process writing its stdout/stderr to a file, the way a job does
(`python train.py > train.log 2>&1`); the test then checks the record the guard wrote and what
`train-doctor` makes of the real log.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.train.conftest import analyse_path

HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed (pip install -e '.[train-test]')")
needs_hf = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None or not HAVE_TORCH,
    reason="transformers/torch are not installed (pip install -e '.[train-test]')",
)
needs_lightning = pytest.mark.skipif(
    (importlib.util.find_spec("lightning") is None and importlib.util.find_spec("pytorch_lightning") is None)
    or not HAVE_TORCH,
    reason="lightning/torch are not installed (pip install -e '.[train-test]')",
)


def test_the_frameworks_are_there_when_ci_requires_them():
    """.ci/run runs this file in its own venv with the train-test extra: nothing may skip there."""
    if os.environ.get("MLOPS_REQUIRE_TRAIN_TESTS") != "1":
        pytest.skip("MLOPS_REQUIRE_TRAIN_TESTS is not set (only .ci/run's train venv requires the frameworks)")
    missing = [m for m in ("torch", "transformers", "accelerate", "lightning") if importlib.util.find_spec(m) is None]
    assert not missing, f"missing: {missing}"


BAD_INDEX = 37  # the sample whose features are NaN
COMMON = f"""
import sys, torch
torch.manual_seed(0)
BAD = {BAD_INDEX}
X = torch.randn(64, 4)
X[BAD] = float("nan")
Y = torch.randn(64, 1)
"""


def run_training(tmp_path: Path, body: str) -> tuple[Path, Path]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(COMMON) + textwrap.dedent(body))
    log = tmp_path / "train.log"
    with open(log, "wb") as out:
        r = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "nan-guard.json")],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
            env={
                "PYTHONUNBUFFERED": "1",
                "PATH": "/usr/bin:/bin",
                "HOME": str(tmp_path),
                "PYTHONPATH": str(Path(__file__).parents[2] / "src"),
            },
        )
    assert r.returncode == 0, log.read_text()[-3000:]
    return log, tmp_path / "nan-guard.json"


def test_importing_the_helper_needs_neither_typer_nor_rich_nor_torch():
    code = (
        "import sys, mlops_cli.nanguard as g; assert g.NanGuard; "
        "bad = {'typer', 'rich', 'torch', 'transformers', 'lightning'} & set(sys.modules); "
        "assert not bad, bad; print('light')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "light" in r.stdout, r.stderr


def test_plain_numbers_trigger_once_and_write_the_record(tmp_path, capsys):
    from mlops_cli.nanguard import NanGuard, NonFiniteError

    lines: list[str] = []
    g = NanGuard(tmp_path / "g.json", log=lines.append)
    assert g.check(step=1, loss=0.5, grad_norm=1.0, lr=1e-4) is False
    assert g.check(step=2, loss=float("nan"), grad_norm=1.0, lr=1e-4, batch_indices=[3, 4]) is True
    assert g.check(step=3, loss=float("nan")) is True and len(lines) == 1
    rec = json.loads((tmp_path / "g.json").read_text())
    assert (rec["step"], rec["loss"], rec["what"], rec["batch_indices"], rec["lr"]) == (
        2,
        "nan",
        ["loss"],
        [3, 4],
        1e-4,
    )
    assert lines[0].startswith("mlops-nanguard: non-finite loss at step 2 (loss=nan, grad_norm=1.0, lr=0.0001)")
    fp16 = NanGuard(tmp_path / "f.json", grads_only_when_finite_loss=True, log=lines.append)
    assert fp16.check(step=5, loss=0.7, grad_norm=float("inf")) is False and fp16.skipped_grad_steps == 1
    r = NanGuard(tmp_path / "r.json", raise_on_nan=True, log=lines.append)
    with pytest.raises(NonFiniteError):
        r.check(step=9, grad_norm=float("inf"))


@needs_torch
def test_plain_torch_loop(tmp_path):
    log, record = run_training(
        tmp_path,
        """
        from mlops_cli.nanguard import NanGuard
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        guard = NanGuard(sys.argv[1])
        order = torch.arange(64)
        for step in range(1, 100):
            idx = order[((step - 1) * 4) % 64:((step - 1) * 4) % 64 + 4]
            loss = torch.nn.functional.mse_loss(model(X[idx]), Y[idx])
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            print(f"step {step} | loss {loss.item():.4f} | grad_norm {norm.item():.4f} | lr 1.00e-03", flush=True)
            if guard.check(step=step, loss=loss, grad_norm=norm, lr=opt.param_groups[0]["lr"], batch_indices=idx, model=model):
                break
            opt.step(); opt.zero_grad()
        print("stopped at", step)
    """,
    )
    rec = json.loads(record.read_text())
    bad_step = BAD_INDEX // 4 + 1
    assert rec["step"] == bad_step and BAD_INDEX in rec["batch_indices"] and rec["framework"] == "loop"
    assert rec["loss"] == "nan" and rec["gradients"]["non_finite"] and rec["parameters"]["non_finite"] == []
    assert f"stopped at {bad_step}" in log.read_text()
    report = analyse_path(log)
    (f,) = report.errors
    assert (f.cls, f.step) == ("nan_loss", bad_step)


HF_BODY = """
    import transformers
    from transformers import Trainer, TrainingArguments
    from mlops_cli.nanguard import hf_callback

    class DS(torch.utils.data.Dataset):
        def __len__(self): return 64
        def __getitem__(self, i): return {"x": X[i], "labels": Y[i]}

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        def forward(self, x, labels=None):
            out = self.net(x)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    args = TrainingArguments(output_dir="out", max_steps=40, per_device_train_batch_size=4, learning_rate=1e-3,
                             logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=0,
                             dataloader_drop_last=True, max_grad_norm=1.0)
    cbs = [hf_callback(sys.argv[1])] if GUARD else []
    trainer = Trainer(model=Tiny(), args=args, train_dataset=DS(), callbacks=cbs)
    trainer.train()
    print("global_step", trainer.state.global_step, "of", args.max_steps)
"""


@needs_hf
def test_hf_trainer_callback_stops_the_run_and_train_doctor_reads_its_log(tmp_path):
    log, record = run_training(tmp_path, "GUARD = True\n" + textwrap.dedent(HF_BODY))
    rec = json.loads(record.read_text())
    assert rec["framework"] == "transformers" and "grad_norm" in rec["what"]
    text = log.read_text()
    assert f"global_step {rec['step']} of 40" in text or f"global_step {rec['step'] - 1} of 40" in text
    assert rec["step"] < 40 and "mlops-nanguard: non-finite" in text
    report = analyse_path(log)
    f = report.errors[0]
    assert f.cls == "nan_loss" and f.step == rec["step"]


@needs_hf
def test_train_doctor_on_a_real_hf_trainer_log_that_went_nan(tmp_path):
    """No guard: the run goes on; HF's logging_nan_inf_filter hides the NaN loss, the grad norm shows it."""
    log, _ = run_training(tmp_path, "GUARD = False\n" + textwrap.dedent(HF_BODY))
    report = analyse_path(log)
    first = report.errors[0]
    assert first.cls == "nan_loss"
    # the sampler shuffles, so the exact step is the one whose logged grad_norm is first non-finite
    import math

    from mlops_cli.train.parse import LogParser

    p = LogParser("train.log")
    p.feed(log.read_bytes())
    p.close()
    recs = [e for e in p.drain() if getattr(e, "grad_norm", None) is not None]
    onset = next(r.step for r in recs if not math.isfinite(r.grad_norm))
    assert first.step == onset
    assert [r.step for r in recs[:5]] == [1, 2, 3, 4, 5]  # the step comes from tqdm's redraw after each dict


@needs_lightning
def test_lightning_callback_with_batch_indices(tmp_path):
    log, record = run_training(
        tmp_path,
        """
        try:
            import lightning.pytorch as pl
        except ImportError:
            import pytorch_lightning as pl
        from mlops_cli.nanguard import lightning_callback

        class DS(torch.utils.data.Dataset):
            def __len__(self): return 64
            def __getitem__(self, i): return {"idx": i, "x": X[i], "y": Y[i]}

        class M(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = torch.nn.Linear(4, 1)
            def training_step(self, batch, batch_idx):
                loss = torch.nn.functional.mse_loss(self.net(batch["x"]), batch["y"])
                self.log("train_loss", loss)
                return loss
            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.01)

        trainer = pl.Trainer(max_steps=40, accelerator="cpu", logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[lightning_callback(sys.argv[1])])
        trainer.fit(M(), torch.utils.data.DataLoader(DS(), batch_size=4, shuffle=False))
        print("global_step", trainer.global_step)
    """,
    )
    rec = json.loads(record.read_text())
    assert rec["framework"] == "lightning" and BAD_INDEX in rec["batch_indices"]
    assert rec["extra"]["batch_idx"] == BAD_INDEX // 4 and rec["loss"] == "nan"
    assert "global_step 40" not in log.read_text()
    f = analyse_path(log).errors[0]
    assert f.cls == "nan_loss" and f.step == rec["step"]
