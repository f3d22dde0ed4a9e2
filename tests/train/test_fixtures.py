"""Every fixture (a real log from a public thread, padding marked in manifest.json) gets the
class, onset, cause, OOM split and rank the manifest says; healthy logs exit 0 with no error."""

from __future__ import annotations

import pytest
from tests.train.conftest import FIXTURES, analyse_path, check_expect, manifest

ENTRIES = manifest()


def test_every_fixture_is_in_the_manifest_with_a_source():
    on_disk = {p.name for p in FIXTURES.glob("*.log")}
    listed = {e["file"] for e in ENTRIES}
    assert on_disk == listed
    for e in ENTRIES:
        assert e["source"].startswith("https://github.com/"), e["file"]
        assert e["verbatim"] and e["padding"], e["file"]


def test_the_manifest_covers_every_class_and_trap():
    classes = {e["expect"].get("class") for e in ENTRIES} | {e["expect"].get("warning") for e in ENTRIES}
    assert {
        "nan_loss",
        "nan_on_one_rank",
        "cuda_oom",
        "nccl_timeout",
        "device_assert",
        "host_oom_dataloader",
        "loss_spike",
        "grad_norm_frozen",
    } <= classes
    causes = {e["expect"].get("cause") for e in ENTRIES}
    assert {"lr_too_high", "grad_explosion", "fp16_overflow_loss_scale", "bad_data", "numerical_op"} <= causes
    splits = {e["expect"].get("split") for e in ENTRIES}
    assert {"capacity", "fragmentation"} <= splits
    healthy = [e for e in ENTRIES if e["expect"]["exit"] == 0]
    assert len(healthy) >= 25
    frameworks = {e.get("framework") for e in healthy}
    assert {
        "hf",
        "trl",
        "deepspeed",
        "megatron",
        "lightning",
        "llamafactory",
        "ms-swift",
        "axolotl",
        "torchtune",
    } <= frameworks


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_fixture(entry):
    report = analyse_path(FIXTURES / entry["file"], entry.get("framework", "auto"), entry.get("model"))
    check_expect(report, entry["expect"])


def test_every_healthy_fixture_stays_healthy_when_the_logs_are_read_together():
    """Several healthy inputs in one run: no finding crosses from one file into another."""
    from mlops_cli.train.analyse import analyse

    healthy = [e for e in ENTRIES if e["expect"]["exit"] == 0]
    handles = [open(FIXTURES / e["file"], "rb") for e in healthy]
    try:
        report = analyse([(e["file"], h) for e, h in zip(healthy, handles)])
    finally:
        for h in handles:
            h.close()
    assert report.exit_code == 0, [(f.cls, f.file, f.step) for f in report.errors]
