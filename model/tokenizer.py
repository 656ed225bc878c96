"""Tokenizers: bytes for the project's own models, `tokenizer.json` for pretrained ones.

Both have the same small interface: `encode(text) -> list[int]`,
`decode(ids) -> str`, `vocab_size`, `eos_id`.
"""

from __future__ import annotations

from pathlib import Path


class ByteTokenizer:
    """One token per UTF-8 byte (ids 0-255), then a few special tokens.

    Byte-level ids make the command grammar's byte DFA the token mask as it is,
    and any text round-trips exactly.
    """

    SPECIALS = ("<pad>", "<bos>", "<eos>")

    def __init__(self) -> None:
        self.special_ids = {name: 256 + index for index, name in enumerate(self.SPECIALS)}
        self.pad_id = self.special_ids["<pad>"]
        self.bos_id = self.special_ids["<bos>"]
        self.eos_id = self.special_ids["<eos>"]
        self.vocab_size = 256 + len(self.SPECIALS)

    def encode(self, text: str, *, bos: bool = False) -> list[int]:
        ids = list(text.encode("utf-8"))
        return [self.bos_id, *ids] if bos else ids

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for (b"" for specials): for decoding a stream piece by piece."""
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} is outside 0..{self.vocab_size - 1}")
        return bytes([token_id]) if token_id < 256 else b""

    def decode(self, ids: list[int]) -> str:
        """Text of the byte tokens; specials are dropped, broken UTF-8 becomes U+FFFD."""
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")


class HFTokenizer:
    """A `tokenizer.json` (as shipped with HF checkpoints) through the `tokenizers` package."""

    def __init__(self, path: str | Path, *, eos_token: str | None = None) -> None:
        from tokenizers import Tokenizer

        path = Path(path).expanduser()
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer.json")
        try:
            self._tokenizer = Tokenizer.from_file(str(file))
        except Exception as error:  # the Rust side raises plain Exception for a malformed file
            raise ValueError(f"{file}: not a tokenizer.json ({str(error).splitlines()[0]})") from None
        self.vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        candidates = [eos_token] if eos_token else ["<|endoftext|>", "</s>", "<eos>"]
        self.eos_id = next((i for i in map(self._tokenizer.token_to_id, candidates) if i is not None), None)

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def to_json(self) -> str:
        """The tokenizer.json text (what llguidance builds its token trie from)."""
        return self._tokenizer.to_str()

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)
