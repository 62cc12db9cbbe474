"""Tokenizers: OpenAI's BPE encodings shipped in the wheel, and the proxy where none is public.

Which encoding counts for a model (`encoding_for`):
- An encoding name (`o200k_base`, `cl100k_base`) counts with itself; `_models.yaml` may
  name one as a model's `tokenizer:`.
- An OpenAI model counts with its own encoding, as the model table of the installed tiktoken
  names it: gpt-4o, gpt-4.1, gpt-5 and the o-series use o200k_base, gpt-4 and gpt-3.5
  cl100k_base. A `provider/` prefix (`azure/gpt-4o`) is ignored. gpt-oss (o200k_harmony)
  counts with o200k_base, whose ranks it shares: its extra special tokens mark the chat
  format and never occur in counted text. An OpenAI model newer than that table counts
  with the proxy until tiktoken is upgraded; `tokenizer: o200k_base` fixes it sooner.
- Every other model counts with the proxy, cl100k_base. Anthropic has published no
  tokenizer since Claude 2 (Claude 3 and later), nor Google one for Gemini; promptreg
  ships no other family's tokenizer. cl100k_base rather than o200k_base because its
  smaller vocabulary splits text more finely, as Claude's does: on the demo registry's
  samples it comes within -0.5% to -8.5% per feature (-4.0% in all) of the count litellm
  gave claude-haiku-4-5 with Claude 2's tokenizer, and within -6% on mixed-language text,
  where o200k_base is 22% under. Claude 3 and later are reported to spend more tokens
  than GPT-4o on the same text, so expect the proxy to under-count them. The drift alarm
  (`budget.drift_alarm_pct`: real input tokens from reported usage against this
  estimate) shows how far off it is, per model; a feature whose first model is counted
  by the proxy should keep budget headroom accordingly.

Messages are counted as OpenAI bills chat input (the formula of OpenAI's cookbook, "How to
count tokens with tiktoken"): 3 tokens per message, plus its role and content (a `name`
costs one more), plus 3 that prime the reply. The proxy uses the same formula: Anthropic's
per-message overhead is not published either, and is small next to the tokenizer's error.

Nothing touches the network: the rank files are read from `registry/tokenizers/`, checked
against their sha256, and parsed here. `tiktoken.get_encoding` would download them, and
`tiktoken.load.load_tiktoken_bpe` copies every file it reads into tiktoken's cache
directory (and fails where that is read-only), so neither is used. Each encoding is built
once per process, on first use, under a lock; encoding itself is thread-safe.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import CatalogError

if TYPE_CHECKING:
    import tiktoken

FILES = Path(__file__).resolve().parent.parent / "tokenizers"
PROXY = "cl100k_base"

# A text longer than this is encoded in pieces: tiktoken's pre-tokenizer regex overflows
# its stack (a Rust panic, not an exception) on a run of about a million spaces.
CHUNK_CHARS = 50_000


@dataclass(frozen=True)
class _Spec:
    sha256: str
    pat_str: str
    special_tokens: dict[str, int] = field(default_factory=dict)


# Hashes, patterns and special tokens as in tiktoken_ext/openai_public.py (tiktoken 0.14.0).
SPECS: dict[str, _Spec] = {
    "o200k_base": _Spec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": _Spec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}

_lock = threading.Lock()
_built: dict[str, tiktoken.Encoding] = {}


def encoding(name: str) -> tiktoken.Encoding:
    """The shipped encoding `name`, built on first use, once per process."""
    built = _built.get(name)
    if built is None:
        with _lock:
            built = _built.get(name)
            if built is None:
                built = _built[name] = _build(name)
    return built


def _build(name: str) -> tiktoken.Encoding:
    import tiktoken

    spec = SPECS[name]
    return tiktoken.Encoding(
        name,
        pat_str=spec.pat_str,
        mergeable_ranks=_ranks(FILES / f"{name}.tiktoken", spec.sha256),
        special_tokens=spec.special_tokens,
    )


def _ranks(path: Path, sha256: str) -> dict[bytes, int]:
    """A `.tiktoken` file's token → rank map (base64 token, space, rank per line)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"tokenizer file {path} cannot be read ({exc.strerror})") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CatalogError(f"tokenizer file {path} is damaged (sha256 mismatch)")
    # The hash vouches for the content: in both shipped files line i holds rank i (a test
    # checks it), so ranks are counted, not parsed — 30 ms less on a client's first run.
    tokens = data.split()[0::2]
    return dict(zip(map(binascii.a2b_base64, tokens), range(len(tokens)), strict=True))


@lru_cache(maxsize=1024)
def _tiktoken_encoding(model: str) -> str | None:
    """The encoding tiktoken names for an OpenAI model (provider prefix and case ignored),
    or None for a model it does not know."""
    from tiktoken.model import encoding_name_for_model

    try:
        return encoding_name_for_model(model.rsplit("/", 1)[-1].lower())
    except KeyError:
        return None


def encoding_for(tokenizer: str) -> str:
    """The shipped encoding that counts for `tokenizer`, an encoding or a model name."""
    if tokenizer in SPECS:
        return tokenizer
    name = _tiktoken_encoding(tokenizer)
    if name is None:
        return PROXY
    if name == "o200k_harmony":
        return "o200k_base"
    if name not in SPECS:
        raise CatalogError(
            f"model {tokenizer!r} counts with {name}, an encoding of retired OpenAI models "
            "that promptreg does not ship; set its `tokenizer:` in policies/_models.yaml"
        )
    return name


def known(tokenizer: str) -> bool:
    """True when `tokenizer` names a shipped encoding, a model tiktoken knows, or a model of
    the price catalog (counted with the proxy): anything else in `_models.yaml` is a typo."""
    if tokenizer in SPECS or _tiktoken_encoding(tokenizer) is not None:
        return True
    from registry.tokens import prices

    return prices.listed(tokenizer) is not None


def count(encoding_name: str, payload: str) -> int:
    """Input tokens of the JSON list of messages `payload` (see `count_messages`)."""
    return _count(encoding_name, payload)


@lru_cache(maxsize=4096)
def _count(encoding_name: str, payload: str) -> int:
    return count_messages(encoding_name, json.loads(payload))


def count_messages(encoding_name: str, messages: Sequence[Mapping[str, Any]]) -> int:
    """Chat input tokens of `messages` by OpenAI's per-message formula."""
    if not messages:
        return 0
    enc = encoding(encoding_name)
    total = 3  # the reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += 3  # <|start|>, <|message|>, <|end|> around each message
        for key, value in message.items():
            if value is None:
                continue
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            total += text_tokens(enc, text) + (1 if key == "name" else 0)
    return total


def text_tokens(enc: tiktoken.Encoding, text: str) -> int:
    """Tokens of `text`, in pieces of at most CHUNK_CHARS cut where the count cannot change."""
    total, start = 0, 0
    while len(text) - start > CHUNK_CHARS:
        end = _cut(text, start, start + CHUNK_CHARS)
        total += len(enc.encode_ordinary(text[start:end]))
        start = end
    return total + len(enc.encode_ordinary(text[start:]))


def _cut(text: str, start: int, end: int) -> int:
    """The last single space in (start, end] between two non-spaces, else `end`.

    Both patterns end a piece before such a space and begin the next with it, so cutting
    there gives the same tokens; a text without one (a run of whitespace, a base64 blob)
    is cut hard, off by at most a token or two per cut.
    """
    low = start + CHUNK_CHARS // 2
    at = text.rfind(" ", low, end)
    while at > low:
        if not text[at - 1].isspace() and not text[at + 1].isspace():
            return at
        at = text.rfind(" ", low, at)
    return end
