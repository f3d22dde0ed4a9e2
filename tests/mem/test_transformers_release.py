"""`--transformers-version`: what an older transformers release did by default (stacks.transformers_defaults).

Before 4.36 Llama-style models had no SDPA path (eager attention: heads × seq² scores per layer);
before 4.46 the model upcast and shifted the logits itself (full-legacy). Each test fails when one of
these rules, its scoping or its remedy breaks."""

from __future__ import annotations

import pytest

from mlops_cli.errors import UsageError
from mlops_cli.mem.estimate import estimate
from mlops_cli.mem.presets import load_preset
from mlops_cli.mem.remedies import advise
from mlops_cli.mem.spec import Setup
from mlops_cli.mem.stacks import resolve


@pytest.fixture(scope="module")
def llama7b():
    return load_preset("meta-llama/Llama-2-7b-hf")


@pytest.mark.parametrize(
    "version,attn,loss",
    [
        ("4.34.0", "eager", "full-legacy"),
        ("4.36.0", "sdpa", "full-legacy"),
        ("4.46.0", "sdpa", "full"),
        (None, "sdpa", "full"),
    ],
)
def test_release_sets_attention_and_loss(version, attn, loss):
    s, origin = resolve(Setup(method="full", transformers_version=version))
    assert (s.attn, s.loss) == (attn, loss)
    if version == "4.34.0":
        assert origin["attn"] == origin["loss"] == "transformers 4.34.0"


def test_flags_and_stacks_that_decide_for_themselves_win():
    assert resolve(Setup(transformers_version="4.30.0", attn="flash"))[0].attn == "flash"  # an explicit flag
    assert resolve(Setup(stack="axolotl", transformers_version="4.30.0"))[0].attn == "flash"  # axolotl's flash-attn
    tt = resolve(Setup(method="lora", stack="torchtune", transformers_version="4.30.0"))[0]
    assert (tt.attn, tt.loss) == ("sdpa", "chunked")  # torchtune runs its own modules and loss
    assert resolve(Setup(stack="unsloth", method="qlora", transformers_version="4.30.0"))[0].loss == "fused"
    with pytest.raises(UsageError):
        resolve(Setup(transformers_version="four"))


def test_an_old_release_costs_the_score_matrix(llama7b):
    s = Setup(method="qlora", lora_rank=64, grad_ckpt=True, batch=1, seq_len=4096)
    old, new = estimate(llama7b, s.with_changes(transformers_version="4.31.0")), estimate(llama7b, s)
    assert old.setup.attn == "eager" and new.setup.attn == "sdpa"
    # one recomputed layer keeps heads × seq² scores (fp32 softmax + 16-bit copy) and their gradient
    assert old.required_bytes - new.required_bytes > llama7b.heads * 4096 * 4096 * 4


def test_the_remedy_for_an_old_release_is_the_upgrade(llama7b):
    s = Setup(method="qlora", lora_rank=64, grad_ckpt=True, batch=1, seq_len=4096, transformers_version="4.31.0")
    advice = advise(llama7b, s, int(0.9 * estimate(llama7b, s).required_bytes))  # does not fit
    upgrade = next(r for r in advice.remedies if r.name == "fused-attention")
    assert upgrade.change["transformers_version"] == "4.36.0" and upgrade.change["attn"] == "sdpa"
