"""TEST ONLY: a tiny random-weight Llama, written for vLLM (transformers' format) and llama.cpp (GGUF).

Real model servers need a real model, and nothing can be downloaded from a model hub here, so the tier
generates one on the spot, the same bytes on every run (fixed seeds): a byte-level BPE tokenizer trained
with ``tokenizers`` on a fixed ASCII corpus, a ChatML chat template, and a 2-layer Llama whose weights come
from numpy's seeded generator. Both files carry the same weights and the same vocabulary, so both servers
produce the same greedy tokens for the same prompt.

Random weights give a random model: the output rows of the special tokens are zeroed, so that an
end-of-sequence token is (almost) never the likeliest and every answer runs to ``max_tokens``.

Run it with the model servers' interpreter (``.venv-backends``), which has torch, transformers,
tokenizers and gguf; the project's own venv need not have them::

    .venv-backends/bin/python -m tests.backends.models OUT_DIR

writes ``OUT_DIR/hf`` (config.json, model.safetensors, tokenizer files with the chat template) and
``OUT_DIR/tiny.gguf``. Nothing here imports ``function_node``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

__all__ = [
    "CHAT_TEMPLATE",
    "GGUF_NAME",
    "HF_DIR",
    "SHAPE",
    "SPECIAL_TOKENS",
    "TinyShape",
    "corpus",
    "generate",
]

HF_DIR: Final = "hf"
GGUF_NAME: Final = "tiny.gguf"
SEED: Final = 20251201
BOS, EOS, IM_START, IM_END = "<s>", "</s>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS: Final = (BOS, EOS, IM_START, IM_END)
# ChatML, the format llama-cpp-python's ``--chat_format chatml`` renders too: both servers see one prompt.
CHAT_TEMPLATE: Final = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_TEXT: Final = (
    "the function network routes requests to nodes that run models on their gpus and a scheduler "
    "checks every node with challenges while gateways sign each request with their keys so that "
    "providers answer only known callers one token at a time in a stream of events"
)
_WORDS: Final = _TEXT.split()


@dataclass(frozen=True, slots=True)
class TinyShape:
    vocab_size: int = 384
    hidden: int = 64
    layers: int = 2
    heads: int = 2  # head_dim 32: vLLM's CPU attention has no kernel for fewer
    kv_heads: int = 1
    intermediate: int = 128
    context: int = 256
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


SHAPE: Final = TinyShape()


def corpus(lines: int = 400, seed: int = SEED) -> list[str]:
    """The tokenizer's training text: ASCII sentences of the fixed words, punctuation and digits."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(lines):
        words = [_WORDS[j] for j in rng.integers(0, len(_WORDS), size=int(rng.integers(4, 14)))]
        out.append(f"{' '.join(words).capitalize()} {i}{'.,!?'[i % 4]}\n")
    return out


def _train_tokenizer(shape: TinyShape) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    # GPT-2's byte-level pre-tokenizer, which llama.cpp applies too for tokenizer.ggml.pre = "gpt-2".
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=shape.vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    return tokenizer


def _weights(shape: TinyShape, vocab: int, special_ids: list[int], seed: int) -> dict[str, np.ndarray]:
    """The model's tensors under transformers' Llama names, float32, from one seeded generator."""
    rng = np.random.default_rng(seed)

    def linear(out_features: int, in_features: int) -> np.ndarray:
        # 1/sqrt(fan_in) keeps activations from vanishing through the layers, so the logits differ
        # clearly and greedy decoding does not hinge on rounding.
        scale = 1.0 / float(np.sqrt(in_features))
        weights: np.ndarray = rng.standard_normal((out_features, in_features)).astype(np.float32) * scale
        return weights

    h, kv = shape.hidden, shape.kv_heads * shape.head_dim
    tensors: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": rng.standard_normal((vocab, h)).astype(np.float32),
        "model.norm.weight": np.ones(h, dtype=np.float32),
    }
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = np.ones(h, dtype=np.float32)
        tensors[p + "post_attention_layernorm.weight"] = np.ones(h, dtype=np.float32)
        tensors[p + "self_attn.q_proj.weight"] = linear(h, h)
        tensors[p + "self_attn.k_proj.weight"] = linear(kv, h)
        tensors[p + "self_attn.v_proj.weight"] = linear(kv, h)
        tensors[p + "self_attn.o_proj.weight"] = linear(h, h)
        tensors[p + "mlp.gate_proj.weight"] = linear(shape.intermediate, h)
        tensors[p + "mlp.up_proj.weight"] = linear(shape.intermediate, h)
        tensors[p + "mlp.down_proj.weight"] = linear(h, shape.intermediate)
    head = linear(vocab, h) * 4.0
    head[special_ids] = 0.0
    tensors["lm_head.weight"] = head
    return tensors


def _write_hf(out: Path, shape: TinyShape, tokenizer: Any, tensors: dict[str, np.ndarray]) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = tokenizer.get_vocab_size()
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.context,
        rms_norm_eps=shape.rms_eps,
        rope_theta=shape.rope_theta,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.token_to_id(BOS),
        eos_token_id=tokenizer.token_to_id(EOS),
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=False)
    model.save_pretrained(out, safe_serialization=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)


def _permute_for_ggml(weight: np.ndarray, heads: int) -> np.ndarray:
    """transformers rotates the two halves of each head; ggml's llama rotates adjacent pairs. The same
    model in GGUF therefore has each head's q/k rows reordered from (half, i) to (i, half)."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)
    )


_GGUF_NAMES: Final = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def _gguf_tensors(shape: TinyShape, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {
        "token_embd.weight": tensors["model.embed_tokens.weight"],
        "output_norm.weight": tensors["model.norm.weight"],
        "output.weight": tensors["lm_head.weight"],
    }
    for i in range(shape.layers):
        for hf, gg in _GGUF_NAMES.items():
            weight = tensors[f"model.layers.{i}.{hf}.weight"]
            if gg == "attn_q":
                weight = _permute_for_ggml(weight, shape.heads)
            elif gg == "attn_k":
                weight = _permute_for_ggml(weight, shape.kv_heads)
            out[f"blk.{i}.{gg}.weight"] = np.ascontiguousarray(weight)
    return out


def _write_gguf(path: Path, shape: TinyShape, tokenizer: Any, tensors: dict[str, np.ndarray]) -> None:
    import gguf

    model = json.loads(tokenizer.to_str())["model"]
    by_id = sorted(model["vocab"].items(), key=lambda item: item[1])
    specials = {token["content"] for token in json.loads(tokenizer.to_str())["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("fxn-tiny-llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.intermediate)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    # One vector per input for /v1/embeddings (the mean over its tokens); generation ignores it.
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_vocab_size(len(by_id))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list([token for token, _ in by_id])
    writer.add_token_types(
        [gguf.TokenType.CONTROL if token in specials else gguf.TokenType.NORMAL for token, _ in by_id]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.token_to_id(BOS))
    writer.add_eos_token_id(tokenizer.token_to_id(EOS))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, tensor in _gguf_tensors(shape, tensors).items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def generate(out: Path, shape: TinyShape = SHAPE, seed: int = SEED) -> None:
    """Write ``out/hf`` and ``out/tiny.gguf``: the same model, tokenizer and chat template in both."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(shape)
    special_ids = [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
    tensors = _weights(shape, tokenizer.get_vocab_size(), special_ids, seed)
    _write_hf(out / HF_DIR, shape, tokenizer, tensors)
    _write_gguf(out / GGUF_NAME, shape, tokenizer, tensors)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.backends.models OUT_DIR")
    generate(Path(sys.argv[1]))
