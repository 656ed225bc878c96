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


class RWKVWorldTokenizer:
    """The RWKV World tokenizer (`rwkv_vocab_v20230424.txt`, shipped with the fla-hub RWKV-7
    folders and BlinkDL's): 65,529 byte strings matched greedily, longest first, at each position
    (RWKV-LM's TRIE_TOKENIZER). Id 0 is the end of text and stands for no bytes.

    Each line of the file is `id literal length`, the literal a Python str or bytes; it is read
    with `ast.literal_eval` (never `eval`)."""

    FILE = "rwkv_vocab_v20230424.txt"

    def __init__(self, path: str | Path) -> None:
        path = Path(path).expanduser()
        file = path / self.FILE if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"{path}: no {self.FILE}")
        self._tokens: dict[int, bytes] = {}
        self._trie: dict = {}
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                token_id, token = self.parse_line(line)
            except ValueError:
                raise ValueError(f"{file}:{number}: not an RWKV vocabulary line") from None
            self._tokens[token_id] = token
            node = self._trie
            for byte in token:
                node = node.setdefault(byte, {})
            node[None] = token_id  # a token ends here
        self.eos_id = 0
        self.vocab_size = max(self._tokens, default=0) + 1

    @staticmethod
    def parse_line(line: str) -> tuple[int, bytes]:
        """`id literal length` → (id, the token's bytes); ValueError when the line is not one."""
        import ast

        try:
            token_id = int(line[: line.index(" ")])
            literal = ast.literal_eval(line[line.index(" ") : line.rindex(" ")].strip())
            length = int(line[line.rindex(" ") :])
        except (ValueError, SyntaxError):
            raise ValueError(f"not an RWKV vocabulary line: {line[:40]!r}") from None
        token = literal.encode("utf-8") if isinstance(literal, str) else literal
        if not isinstance(token, bytes) or not token or len(token) != length:
            raise ValueError(f"not an RWKV vocabulary line: {line[:40]!r}")
        return token_id, token

    def encode(self, text: str) -> list[int]:
        return self.encode_bytes(text.encode("utf-8"))

    def encode_bytes(self, data: bytes) -> list[int]:
        """Longest match first, from left to right (every single byte is a token, so it never sticks)."""
        ids, position = [], 0
        while position < len(data):
            node, best, end = self._trie, None, position
            for index in range(position, len(data)):
                node = node.get(data[index])
                if node is None:
                    break
                if None in node:
                    best, end = node[None], index + 1
            if best is None:
                raise ValueError(f"byte {data[position]:#04x} has no token")
            ids.append(best)
            position = end
        return ids

    def token_bytes(self, token_id: int) -> bytes:
        return self._tokens.get(token_id, b"")

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def llguidance(self):
        """An `llguidance.LLTokenizer` over these tokens, for the grammar mask."""
        import llguidance

        tokenizer = self

        class _Tokens:  # what llguidance's TokenizerWrapper reads
            eos_token_id, bos_token_id = 0, None
            tokens = [tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size)]
            special_token_ids = [0]

            def __call__(self, data: bytes) -> list[int]:
                return tokenizer.encode_bytes(data)

        return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Tokens()))
