"""A checkpoint's chat template, rendered as ``transformers`` renders it.

``transformers``' ``apply_chat_template`` compiles the template in a
sandboxed ``ImmutableSandboxedEnvironment`` with ``trim_blocks`` and
``lstrip_blocks``, the ``loopcontrols`` extension, its own ``tojson`` (no
HTML escaping), ``raise_exception``, ``strftime_now``, a plain ``dict`` and a
namespace that refuses underscore names, and renders it with ``messages``,
``add_generation_prompt`` and the tokenizer's special tokens (``bos_token``,
``eos_token``, ...) as variables (transformers/utils/chat_template_utils.py,
``_cached_compile_jinja_template`` and ``render_jinja_template``). This module
does the same with ``jinja2`` alone, so the editor renders a conversation
exactly as the checkpoint's own tooling would, without importing
``transformers`` (a test compares the two on real templates).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from infitool_edit.errors import InfitoolError

# The special tokens transformers passes to a template (its SPECIAL_TOKENS_ATTRIBUTES).
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class ChatTemplateError(InfitoolError, ValueError):
    """A chat template that cannot be read or rendered (one line)."""


def _token_text(value) -> str | None:
    """tokenizer_config.json writes a special token as a string or as an AddedToken dict."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


@lru_cache(maxsize=16)
def _compile(source: str):
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    class TemplateDict:
        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check_name(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"a chat template cannot set {name!r} on a namespace")

    class Generation(jinja2.ext.Extension):
        """``{% generation %}…{% endgeneration %}`` (assistant masks in training templates): rendered as its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    environment.globals["dict"] = TemplateDict()
    environment.globals["namespace"] = TemplateNamespace
    try:
        return environment.from_string(source)
    except jinja2.exceptions.TemplateError as error:
        raise ChatTemplateError(f"the chat template does not compile: {error}") from None


class ChatTemplate:
    """One chat template and the special tokens it is rendered with."""

    def __init__(self, source: str, special_tokens: dict[str, str] | None = None, *, origin: str = "") -> None:
        self.source = source
        self.special_tokens = {k: v for k, v in (special_tokens or {}).items() if v is not None}
        self.origin = origin
        self._template = _compile(source)

    def render(self, messages: list[dict], *, add_generation_prompt: bool = False) -> str:
        import jinja2

        try:
            return self._template.render(
                messages=[dict(message) for message in messages], tools=None, documents=None,
                add_generation_prompt=add_generation_prompt, **self.special_tokens,
            )
        except jinja2.exceptions.TemplateError as error:
            raise ChatTemplateError(f"{self.origin or 'the chat template'}: {error}") from None

    @classmethod
    def from_folder(cls, folder: str | Path) -> ChatTemplate | None:
        """The folder's template, where transformers looks for one: ``chat_template.jinja``, else
        ``chat_template`` in ``tokenizer_config.json`` (a string, or a list of named templates of
        which ``default`` is used). None when the folder has none."""
        folder = Path(folder)
        settings: dict = {}
        config_path = folder / "tokenizer_config.json"
        if config_path.is_file():
            try:
                settings = json.loads(config_path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise ChatTemplateError(f"{config_path}: not valid JSON ({error})") from None
            settings = settings if isinstance(settings, dict) else {}
        special = {name: _token_text(settings.get(name)) for name in SPECIAL_TOKEN_NAMES}
        jinja_path = folder / "chat_template.jinja"
        if jinja_path.is_file():
            return cls(jinja_path.read_text(encoding="utf-8"), special, origin=str(jinja_path))
        source = settings.get("chat_template")
        if isinstance(source, list):
            named = {entry.get("name"): entry.get("template") for entry in source if isinstance(entry, dict)}
            source = named.get("default")
        if isinstance(source, str) and source.strip():
            return cls(source, special, origin=f"{config_path} chat_template")
        return None
