"""Tokenizers for tiny models, built offline from a few hundred byte-level symbols.

Pipelines pad prompts to `model_max_length`, so every tokenizer sets it. Random weights make the
token ids meaningless anyway; what matters is that the real tokenizer classes load from disk.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ..single_file_configs.clip_vocabulary import bytes_to_unicode

QWEN_SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                       "<|image_pad|>", "<|video_pad|>"]
# Enough of Qwen's chat template for the pipelines' apply_chat_template calls.
QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_clip_tokenizer_files(folder: Path) -> None:
    """A minimal byte-level BPE vocabulary CLIPTokenizer can load offline."""
    symbols = list(bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols]
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("e", "r</w>")]
    vocab_list += ["".join(pair) for pair in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab_list)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges))


def clip_tokenizer(max_length: int = 77) -> Any:
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer_files(Path(tmp))
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=max_length)


def t5_tokenizer(max_length: int = 512) -> Any:
    """A Unigram T5 tokenizer (no sentencepiece needed)."""
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(chr(c), -3.0) for c in range(ord("!"), ord("~") + 1)]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=max_length)


def qwen2_tokenizer(max_length: int = 1024) -> Any:
    """A byte-level BPE Qwen2 tokenizer with Qwen's special tokens and a chat template.
    Ids: 256 bytes, 2 merges, <|endoftext|> = 258, then QWEN_SPECIAL_TOKENS (259...)."""
    from transformers import Qwen2Tokenizer

    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols)}
    merges = [("Ġ", "t"), ("h", "e")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text(
            "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges))
        tokenizer = Qwen2Tokenizer.from_pretrained(tmp, model_max_length=max_length)
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS})
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


QWEN_VOCAB = 272  # above every id qwen2_tokenizer hands out
