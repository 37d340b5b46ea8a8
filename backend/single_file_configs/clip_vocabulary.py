"""The CLIP tokenizer's vocabulary (SD 1.5, SD 2, SDXL), written from open-clip-torch's BPE file.

CLIP's byte-level BPE vocabulary is fully determined by its merge list: the 256 byte symbols,
the same with the end-of-word mark `</w>`, one token per merge in merge order, then
`<|startoftext|>` and `<|endoftext|>` (49,408 ids). open-clip-torch ships that merge list
(`open_clip/bpe_simple_vocab_16e6.txt.gz`); this module turns it into the `vocab.json` and
`merges.txt` that transformers' CLIPTokenizer reads, so no tokenizer is ever downloaded. The
package is only read as data: importing open_clip would need timm and torchvision.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

from ..errors import ModelNotFound

VERSION = 1  # bump if the files written here change
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
MERGES = 49408 - 2 * 256 - 2  # CLIP's 49,408 ids less the byte symbols and the two specials
PACKAGE_HINT = ("Install it into the backend's Python with `pip install --no-deps "
                "open-clip-torch==3.3.0` (Install Backend does), or download the model's "
                "configs once: `hf download <repo> --include \"*.json\" --include \"*.txt\"`.")


def bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable-character table of byte-level BPE (as in GPT-2/CLIP)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def bpe_file() -> Path:
    """open-clip-torch's merge list, found without importing the package."""
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / BPE_FILE
        if path.is_file():
            return path
    raise ModelNotFound("the CLIP tokenizer for single-file SD checkpoints comes from the "
                        "open-clip-torch package, which is not installed in the backend's "
                        "Python", hint=PACKAGE_HINT)


def merges(path: Path | None = None) -> list[tuple[str, str]]:
    """The merge list: the file's lines after its header line, CLIP's first MERGES pairs."""
    with gzip.open(path or bpe_file(), "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")[1:MERGES + 1]
    pairs = [tuple(line.split()) for line in lines]
    if len(pairs) != MERGES or any(len(pair) != 2 for pair in pairs):
        raise ModelNotFound(f"{path or bpe_file()} is not CLIP's BPE merge list",
                            hint=PACKAGE_HINT)
    return pairs  # type: ignore[return-value]


def vocabulary(pairs: list[tuple[str, str]]) -> dict[str, int]:
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    tokens += ["".join(pair) for pair in pairs]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}


def write_files(folder: Path) -> None:
    """`vocab.json` and `merges.txt` in `folder`, beside its tokenizer_config.json."""
    pairs = merges()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocabulary(pairs), ensure_ascii=False),
                                       encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in pairs) + "\n", encoding="utf-8")
