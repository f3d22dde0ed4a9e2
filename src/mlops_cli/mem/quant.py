"""Weight bytes of a quantized checkpoint, from its `quantization_config` (pure).

What stays in 16-bit:
- the embeddings and the LM head: AWQ and GPTQ quantize only the decoder layers' linear modules
  (AutoAWQ / GPTQModel), and bitsandbytes skips `lm_head` (`llm_int8_skip_modules` default) and
  never touches `nn.Embedding`;
- whatever `modules_to_not_convert` / `ignored_layers` / `ignore` name: Meta's
  Llama-3.1-405B-Instruct-FP8 keeps every `self_attn` projection and layers 0 and 125 in bf16
  (its config.json), compressed-tensors checkpoints list `ignore: ["lm_head"]`;
- norms and MoE routers (tiny).
Per-parameter cost of quantized weights: the packed bits plus one scale (and zero point) per
group: GPTQ/AWQ `group_size` 128 → 4 bits + (16-bit scale + 4-bit zero)/128; FP8 one byte
(block or channel scales are negligible); MXFP4 4 bits + an 8-bit exponent per 32; NF4 4 bits +
double-quantised constants (0.127 bit).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from mlops_cli.mem.config import ModelConfig

METHOD_BITS = {
    "awq": 4,
    "gptq": 4,
    "fp8": 8,
    "fbgemm_fp8": 8,
    "mxfp4": 4,
    "bitsandbytes": 4,
    "nf4": 4,
    "compressed-tensors": 8,
    "int8": 8,
}


@dataclass(frozen=True)
class QuantInfo:
    method: str
    bits: int
    group_size: int = 128
    not_converted: tuple[str, ...] = field(default_factory=tuple)

    @property
    def bytes_per_param(self) -> float:
        if self.method in ("bitsandbytes", "nf4") and self.bits == 4:
            return 0.5 + 0.127 / 8
        if self.method == "mxfp4":
            return 0.5 + 1 / 32
        if self.bits >= 8:
            return self.bits / 8 + (0.02 if self.method in ("int8", "bitsandbytes") else 0.0)
        group = self.group_size if self.group_size and self.group_size > 0 else 4096
        return self.bits / 8 + (2 + self.bits / 8) / group

    def skips(self, name: str) -> bool:
        """Whether a module path is left unquantized: a plain substring, a compressed-tensors `re:`
        pattern, or a pattern with `*` (gpt-oss: "model.layers.*.self_attn"; transformers 4.57.1
        integrations/mxfp4.py `should_convert_module` re.match-es the module path against it)."""
        for pattern in self.not_converted:
            if pattern.startswith("re:"):
                if re.search(pattern[3:], name):
                    return True
            elif "*" in pattern:
                if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern + ".*"):
                    return True
            elif pattern and pattern in name:
                return True
        return False


def from_config(qcfg: Any) -> Optional[QuantInfo]:
    """A `quantization_config` dict -> QuantInfo, or None when absent/unknown."""
    if not isinstance(qcfg, dict):
        return None
    method = str(qcfg.get("quant_method", "")).lower()
    bits = qcfg.get("bits") or qcfg.get("w_bit") or qcfg.get("weight_bits")
    if method == "bitsandbytes":
        bits = 4 if qcfg.get("load_in_4bit") or qcfg.get("_load_in_4bit") else 8
    if method == "compressed-tensors":
        bits = _compressed_tensors_bits(qcfg)
    if not isinstance(bits, int) or isinstance(bits, bool):
        bits = METHOD_BITS.get(method)
    if bits is None:
        return None
    group = qcfg.get("group_size", qcfg.get("q_group_size", 128))
    skip: list[str] = []
    for key in ("modules_to_not_convert", "ignored_layers", "ignore", "llm_int8_skip_modules"):
        value = qcfg.get(key)
        if isinstance(value, list):
            skip.extend(str(v) for v in value if isinstance(v, str))
    return QuantInfo(method, int(bits), int(group) if isinstance(group, int) else 128, tuple(skip))


def _compressed_tensors_bits(qcfg: dict[str, Any]) -> int:
    groups = qcfg.get("config_groups")
    if isinstance(groups, dict):
        for group in groups.values():
            weights = group.get("weights") if isinstance(group, dict) else None
            if isinstance(weights, dict) and isinstance(weights.get("num_bits"), int):
                return int(weights["num_bits"])
    return 8


def weight_bytes(model: ModelConfig, q: QuantInfo, half_bytes: int = 2) -> float:
    """Bytes of the whole checkpoint: quantized decoder linears, 16-bit everything else."""
    total = float((model.total_params - model.linear_params) * half_bytes)  # embeddings, head, norms
    qb = q.bytes_per_param
    # vLLM pads the MXFP4 expert matrices for its MoE kernels (model_executor/layers/quantization/mxfp4.py
    # at 0.14.0, Mxfp4MoEMethod.create_weights: Marlin rounds hidden up to 256 and the intermediate to
    # 128, the SM100 FlashInfer paths both to 256): gpt-oss (hidden 2880 -> 3072) loads ~7 % more expert
    # bytes than the checkpoint holds -- llm-d logs 13.47 GiB (20b) and 64.38 GiB (120b) on H100.
    pad = (-(-model.hidden // 256) * 256) / model.hidden if (q.method == "mxfp4" and model.experts) else 1.0
    for layer in range(model.layers):
        prefix = f"model.layers.{layer}."
        whole = q.skips(prefix)
        attn_skip = whole or q.skips(prefix + "self_attn") or q.skips("self_attn")
        mlp_skip = whole or q.skips(prefix + "mlp")
        total += model.attention_params * (half_bytes if attn_skip else qb)
        total += model.mlp_params * (half_bytes if mlp_skip else qb * pad)
    return total
