"""Architecture facts of a model, read from a Hugging Face ``config.json`` (pure).

Only what the memory estimate needs: sizes, layer count, heads (GQA), MLP shape,
MoE experts, vocabulary, tied embeddings. Parameter counts follow the module layout
of the transformers implementations (Llama/Qwen/Mistral/Gemma/ChatGLM/Baichuan,
BERT, BLOOM/GPT-2 style, T5 encoder-decoder) closely enough to reproduce the
published totals (Llama-3-8B 8.03B, Qwen2.5-7B 7.62B).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from mlops_cli.errors import UsageError
from mlops_cli.text import one_line, shorten


@dataclass(frozen=True)
class ModelConfig:
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool = False
    gated_mlp: bool = True  # SwiGLU/GeGLU (3 matrices) vs GELU MLP (2 matrices)
    attention_bias: bool = False
    dropout: bool = False  # BERT/T5/BLOOM-era models keep dropout masks for backward
    experts: int = 0  # MoE: routed experts per layer (0 = dense)
    experts_per_token: int = 0
    expert_intermediate: int = 0
    shared_expert_intermediate: int = 0
    encoder_decoder: bool = False  # T5: `layers` counts encoder + decoder blocks
    # The model code builds its ALiBi bias as a dense batch·heads·seq² tensor (Baichuan-13B
    # remote code); BLOOM-style ALiBi broadcasts a heads·seq vector instead and is not flagged.
    alibi_mask: bool = False
    extra_params: int = 0  # position/token-type embeddings, pooler, relative bias
    max_positions: int = 0
    # Module layout details that change the exact count (transformers modeling files):
    linear_bias: bool = False  # every projection has a bias (GPT-2, BLOOM, GPT-NeoX, Phi-1/2)
    norm_bias: bool = False  # LayerNorm with a bias (vs RMSNorm)
    norms_per_layer: int = 2  # Gemma-2/3: 4 (pre/post attention and feed-forward); Phi-1/2: 1 (parallel block)
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3, Gemma-3, OLMo-2-style)
    embed_norm: bool = False  # BLOOM word_embeddings_layernorm
    lm_head_bias: bool = False  # Phi-1/2
    # KV cache layout per layer (serving): () = every layer full attention; else one kind per layer:
    # "full", "sliding" (sliding_window tokens), "chunked" (attention_chunk tokens, Llama 4),
    # "linear" (Mamba / gated-delta-net / conv state: a fixed state per sequence, no per-token KV).
    layer_kinds: tuple = ()
    sliding_window: int = 0
    attention_chunk: int = 0
    # Multi-head latent attention (DeepSeek-V2/V3, Kimi): the cache holds kv_lora_rank + qk_rope_head_dim
    # values per token and layer, the same on every tensor-parallel rank
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    quantization: Any = None  # quant.QuantInfo of a pre-quantized checkpoint (quantization_config)
    exact_params: int = 0  # counted from safetensors headers / index / Hub metadata; 0 = use the formula
    param_source: str = "config formula"
    torch_dtype: str = "bfloat16"
    source: str = ""
    model_type: str = ""  # config.json's model_type (the language model's, for multimodal wrappers)

    # --- parameter counts -------------------------------------------------------
    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tied else self.vocab * self.hidden

    @property
    def attention_params(self) -> int:
        q = self.hidden * self.heads * self.head_dim
        kv = 2 * self.hidden * self.kv_heads * self.head_dim
        o = self.heads * self.head_dim * self.hidden
        bias = (self.heads + 2 * self.kv_heads) * self.head_dim if (self.attention_bias or self.linear_bias) else 0
        bias += self.hidden if self.linear_bias else 0  # output projection bias
        cross = (q + kv + o) if self.encoder_decoder else 0  # decoder cross-attention, averaged below
        return q + kv + o + bias + cross // 2

    @property
    def mlp_params(self) -> int:
        """Parameters of one layer's MLP, all experts included."""
        if self.experts:
            per_expert = 3 * self.hidden * self.expert_intermediate
            shared = 3 * self.hidden * self.shared_expert_intermediate
            return self.experts * per_expert + shared + self.hidden * self.experts
        bias = (self.intermediate * (2 if self.gated_mlp else 1) + self.hidden) if self.linear_bias else 0
        return (3 if self.gated_mlp else 2) * self.hidden * self.intermediate + bias

    @property
    def active_mlp_intermediate(self) -> int:
        """Intermediate width a token actually passes through (MoE: routed + shared)."""
        if self.experts:
            return self.experts_per_token * self.expert_intermediate + self.shared_expert_intermediate
        return self.intermediate

    @property
    def norm_params(self) -> int:
        return self.hidden * (2 if self.norm_bias else 1)

    @property
    def layer_params(self) -> int:
        qk = 2 * self.head_dim if self.qk_norm else 0
        return self.attention_params + self.mlp_params + self.norms_per_layer * self.norm_params + qk

    @property
    def linear_params(self) -> int:
        """Weights of the layers' linear modules: what bitsandbytes quantizes."""
        return self.layers * (self.attention_params + self.mlp_params)

    @property
    def total_params(self) -> int:
        return self.exact_params or self.formula_params

    @property
    def formula_params(self) -> int:
        head_bias = self.vocab if (self.lm_head_bias and not self.tied) else 0
        embed_norm = self.norm_params if self.embed_norm else 0
        return (
            self.embedding_params
            + self.lm_head_params
            + head_bias
            + self.layers * self.layer_params
            + self.norm_params
            + embed_norm
            + self.extra_params
        )

    @property
    def largest_layer_params(self) -> int:
        """DeepSpeed's `largest_layer_params`: usually the embedding or the LM head."""
        biggest_linear = max(
            self.hidden * self.heads * self.head_dim, self.hidden * max(self.intermediate, self.expert_intermediate)
        )
        return max(self.embedding_params, biggest_linear)

    def lora_params(self, rank: int, targets: str = "all-linear") -> int:
        """LoRA A and B matrices: r·(in + out) per targeted linear, per layer."""
        qkvo = (self.hidden + self.heads * self.head_dim) * 2 + 2 * (self.hidden + self.kv_heads * self.head_dim)
        if targets == "attention":
            per_layer = qkvo
        else:
            inter = self.intermediate if not self.experts else self.expert_intermediate * max(1, self.experts)
            per_layer = qkvo + (3 if self.gated_mlp else 2) * (self.hidden + inter)
        return rank * per_layer * self.layers

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["total_params"] = self.total_params
        q = self.quantization
        doc["quantization"] = (
            None
            if q is None
            else {
                "method": q.method,
                "bits": q.bits,
                "group_size": q.group_size,
                "not_converted": list(q.not_converted),
            }
        )
        return doc


def _shown(value: Any) -> str:
    """A config value quoted in an error: on one line and short, however long it is."""
    return shorten(one_line(repr(value)), 80)


def _first(cfg: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if key in cfg and cfg[key] is not None:
            return cfg[key]
    return default


def _finite(cfg: Any, prefix: str = "") -> None:
    """NaN, Infinity or a number too large for a float (1e400 parses as inf), anywhere in the
    config (nested keys too) -> exit 2 naming the key."""
    stack = [(prefix, cfg)]
    while stack:
        where, node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            name = f"{where}.{key}" if where else str(key)
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"malformed model config: {name[:80]} is {value!r}, not a finite number")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > 2**62:
                # 1e308 is finite, but no dimension or count is that large, and products of
                # such values overflow a float.
                raise UsageError(f"malformed model config: {name[:80]} = {str(value)[:30]} is out of range")
            if isinstance(value, (dict, list)):
                stack.append((name, value))


def _positive_int(cfg: dict[str, Any], what: str, *keys: str, default: Any = None) -> int:
    value = _first(cfg, *keys, default=default)
    if value is None:
        raise UsageError(
            f"malformed model config: no {what} ({' / '.join(keys)})",
            hint="pass a transformers config.json of a decoder or encoder model",
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value <= 0:
        raise UsageError(f"malformed model config: {keys[0]} must be a positive integer, got {_shown(value)}")
    return int(value)


def _count(cfg: dict[str, Any], *keys: str, default: Any = 0) -> int:
    """An optional count (experts, positions, ...): absent/null -> default; else a whole number >= 0."""
    value = _first(cfg, *keys, default=default)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 0:
        key = next((k for k in keys if cfg.get(k) is not None), keys[0])
        raise UsageError(f"malformed model config: {key} must be a whole number >= 0, got {_shown(value)}")
    return int(value)


# Module layouts that differ from the Llama default (RMSNorm, no biases, 2 norms per layer), as
# in each transformers modeling_<type>.py: Phi-1/2 is a parallel block (one LayerNorm) with biased
# q/k/v/dense/fc1/fc2 and a biased LM head -- not a gated MLP; BLOOM adds a LayerNorm on the
# word embeddings; Gemma-2/3 wrap attention and MLP in pre- and post-norms; Qwen3 and Gemma-3
# normalise q and k per head.
LAYOUTS: dict[str, dict[str, Any]] = {
    "phi": {"gated_mlp": False, "linear_bias": True, "norm_bias": True, "norms_per_layer": 1, "lm_head_bias": True},
    "bloom": {"gated_mlp": False, "linear_bias": True, "norm_bias": True, "embed_norm": True},
    "gpt_neox": {"gated_mlp": False, "linear_bias": True, "norm_bias": True},
    "gpt2": {"gated_mlp": False, "linear_bias": True, "norm_bias": True},
    "opt": {"gated_mlp": False, "linear_bias": True, "norm_bias": True},
    "bert": {"gated_mlp": False, "linear_bias": True, "norm_bias": True, "embed_norm": True},
    "roberta": {"gated_mlp": False, "linear_bias": True, "norm_bias": True, "embed_norm": True},
    "gemma2": {"norms_per_layer": 4},
    "gemma3": {"norms_per_layer": 4, "qk_norm": True},
    "gemma3_text": {"norms_per_layer": 4, "qk_norm": True},
    "qwen3": {"qk_norm": True},
    # Apertus: xIELU MLP with up/down projections only and per-head QK norm (verl
    # tests/utils/test_flops_counter.py @b178a3c, apertus entry: k_mlp=2, k_qkn=2)
    "apertus": {"gated_mlp": False, "qk_norm": True},
    "qwen3_moe": {"qk_norm": True},
}


_KIND_NAMES = {
    "full_attention": "full",
    "attention": "full",
    "global": "full",
    "sliding_attention": "sliding",
    "local": "sliding",
    "chunked_attention": "chunked",
    "linear_attention": "linear",
    "mamba": "linear",
    "conv": "linear",
    "short_conv": "linear",
}


def _layer_kinds(cfg: dict[str, Any], model_type: str, layers: int) -> tuple[tuple[str, ...], int, int]:
    """(kind per layer, sliding window, attention chunk) as the transformers config classes define them.

    Sources (transformers 4.57.1 configuration_*.py): an explicit `layer_types` list wins (gpt-oss,
    Gemma-3, Qwen3-Next, LFM2, Qwen3.5); Gemma-2 alternates sliding and global layers starting with a
    sliding one; Gemma-3 (no list) uses `sliding_window_pattern` (default 6: five sliding, then one
    global); Llama-4 makes every fourth layer (the NoPE layers) global and chunks the others by
    `attention_chunk_size`; Qwen3-Next keeps full attention every `full_attention_interval` (default 4)
    layers and gated delta-net elsewhere; Mistral-7B-v0.1-style configs with a `sliding_window` and
    no list slide on every layer. Returns () for a model without any of these (all full)."""
    window = _count(cfg, "sliding_window") if cfg.get("use_sliding_window", True) is not False else 0
    chunk = _count(cfg, "attention_chunk_size")
    raw = cfg.get("layer_types")
    if isinstance(raw, list) and raw and all(isinstance(t, str) for t in raw):
        kinds = tuple(_KIND_NAMES.get(t.lower(), "full") for t in raw[:layers])
    elif model_type == "gemma2" and window:
        kinds = tuple("sliding" if i % 2 == 0 else "full" for i in range(layers))
    elif model_type in ("gemma3", "gemma3_text") and window:
        pattern = _count(cfg, "sliding_window_pattern", default=6) or 6
        kinds = tuple("full" if (i + 1) % pattern == 0 else "sliding" for i in range(layers))
    elif model_type in ("llama4", "llama4_text") and chunk:
        kinds = tuple("full" if (i + 1) % 4 == 0 else "chunked" for i in range(layers))
    elif model_type == "qwen3_next":
        interval = _count(cfg, "full_attention_interval", default=4) or 4
        kinds = tuple("full" if (i + 1) % interval == 0 else "linear" for i in range(layers))
    elif window and model_type in ("mistral", "mixtral", "qwen2", "qwen2_moe", "starcoder2", "phi3"):
        kinds = ("sliding",) * layers
    else:
        kinds = ()
    if kinds and all(k == "full" for k in kinds):
        kinds = ()
    return kinds, window if "sliding" in kinds else 0, chunk if "chunked" in kinds else 0


def config_from_dict(cfg: Any, name: str, source: str = "") -> ModelConfig:
    """Turn a parsed config.json into a ModelConfig; malformed input -> UsageError (exit 2)."""
    if not isinstance(cfg, dict):
        raise UsageError(f"malformed model config for {name}: expected a JSON object")
    _finite(cfg)
    if isinstance(cfg.get("text_config"), dict) and "hidden_size" not in cfg:
        cfg = {**cfg["text_config"], "_parent": True}  # multimodal wrappers: the language model
    model_type = str(cfg.get("model_type", "")).lower()
    layout = dict(LAYOUTS.get(model_type, {}))
    encoder_decoder = bool(cfg.get("is_encoder_decoder")) or model_type in ("t5", "mt5", "umt5")
    hidden = _positive_int(cfg, "hidden size", "hidden_size", "d_model", "n_embd", "n_embed")
    heads = _positive_int(cfg, "attention heads", "num_attention_heads", "num_heads", "n_head", "n_heads")
    if encoder_decoder:
        layers = _positive_int(cfg, "layer count", "num_layers") + _positive_int(
            cfg, "decoder layer count", "num_decoder_layers", "num_layers"
        )
    else:
        layers = _positive_int(cfg, "layer count", "num_hidden_layers", "num_layers", "n_layer", "n_layers")
    kv_heads = _positive_int(
        cfg, "key/value heads", "num_key_value_heads", "multi_query_group_num", "num_kv_heads", default=heads
    )
    if cfg.get("multi_query_attention") is False:
        kv_heads = heads
    if heads % kv_heads:
        raise UsageError(
            f"malformed model config: {heads} attention heads cannot be shared by {kv_heads} key/value heads",
            hint="num_attention_heads must be a multiple of num_key_value_heads",
        )
    head_dim = _positive_int(cfg, "head dim", "head_dim", "d_kv", "kv_channels", default=hidden // heads or 1)
    vocab = _positive_int(cfg, "vocabulary size", "vocab_size", "padded_vocab_size")
    act = str(
        _first(cfg, "hidden_act", "hidden_activation", "activation_function", "feed_forward_proj", default="silu")
    ).lower()
    gated = layout.pop("gated_mlp", model_type not in ("falcon", "t5")) or "gated" in act
    if model_type == "chatglm":
        gated = True
    inter = _first(cfg, "intermediate_size", "ffn_hidden_size", "d_ff", "n_inner")
    if inter is None and model_type in ("bloom", "gpt2", "falcon", "opt", "gpt_neox"):
        inter = 4 * hidden
    inter = (
        _positive_int({"x": inter}, "intermediate size", "x")
        if inter is not None
        else _positive_int(cfg, "intermediate size", "intermediate_size")
    )
    if model_type == "qwen":  # Qwen-1 configs give w1+w2 together
        inter //= 2
    experts = _count(cfg, "num_experts", "num_local_experts", "n_routed_experts")
    experts_per_token = _count(cfg, "num_experts_per_tok", "moe_topk")
    if experts and experts_per_token > experts:
        raise UsageError(
            f"malformed model config: num_experts_per_tok {experts_per_token} is more than the {experts} experts",
            hint="each token is routed to at most num_experts experts",
        )
    expert_inter = _count(cfg, "moe_intermediate_size", default=inter) if experts else 0
    shared_inter = _count(cfg, "shared_expert_intermediate_size")
    if experts and not shared_inter and cfg.get("n_shared_experts"):
        shared_inter = _count(cfg, "n_shared_experts") * expert_inter
    tied = bool(
        _first(cfg, "tie_word_embeddings", default=model_type in ("bert", "bloom", "gpt2", "t5", "gemma", "gemma2"))
    )
    if model_type in ("mt5", "umt5") and "tie_word_embeddings" not in cfg:
        tied = False
    extra = 0
    if model_type in ("bert", "roberta"):
        extra = (
            (_count(cfg, "max_position_embeddings", default=512) + _count(cfg, "type_vocab_size", default=2)) * hidden
            + hidden * hidden
            + hidden
        )  # position + token-type embeddings, pooler dense + bias
    elif model_type == "gpt2":
        extra = _count(cfg, "n_positions", default=1024) * hidden
    elif model_type == "opt":
        extra = (_count(cfg, "max_position_embeddings", default=2048) + 2) * hidden  # learned positions, offset 2
    bias = bool(
        _first(
            cfg,
            "attention_bias",
            "qkv_bias",
            "add_qkv_bias",
            "bias",
            default=model_type in ("qwen2", "qwen2_moe", "qwen", "bert", "bloom", "gpt2", "chatglm"),
        )
    )
    dropout_keys = (
        "attention_dropout",
        "attention_probs_dropout_prob",
        "attn_pdrop",
        "dropout_rate",
        "hidden_dropout_prob",
        "hidden_dropout",
    )
    dropout = any(
        isinstance(cfg.get(k), (int, float)) and not isinstance(cfg.get(k), bool) and cfg[k] > 0 for k in dropout_keys
    )
    # Baichuan 1/2 13B (remote code modeling_baichuan.py) use ALiBi and declare only `model_max_length`;
    # the 7B checkpoints use RoPE and declare `max_position_embeddings` for the rotary cache.
    alibi_mask = bool(cfg.get("alibi_mask", model_type == "baichuan" and "max_position_embeddings" not in cfg))
    from mlops_cli.mem.quant import from_config

    kinds, window, chunk = _layer_kinds(cfg, model_type, layers)
    return ModelConfig(
        layer_kinds=kinds,
        sliding_window=window,
        attention_chunk=chunk,
        kv_lora_rank=_count(cfg, "kv_lora_rank"),
        qk_rope_head_dim=_count(cfg, "qk_rope_head_dim"),
        **layout,
        quantization=from_config(cfg.get("quantization_config")),
        name=name,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=inter,
        vocab=vocab,
        tied=tied,
        gated_mlp=gated,
        attention_bias=bias,
        dropout=dropout,
        experts=experts,
        experts_per_token=experts_per_token,
        expert_intermediate=expert_inter,
        shared_expert_intermediate=shared_inter,
        encoder_decoder=encoder_decoder,
        extra_params=extra,
        alibi_mask=alibi_mask,
        max_positions=_count(cfg, "max_position_embeddings", "seq_length", "n_positions"),
        torch_dtype=str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"),
        source=source,
        model_type=model_type,
    )
