"""Command templates: ``{port}``, ``{unix_socket}``, ``{base_url}``, ``{--}`` and friends.

Pure functions, no I/O. The semantics are jhsingle-native-proxy's (Python
``str.format`` on every argv word, so ``{{``/``}}`` are literal braces and
``{port:05d}`` works), with one fix: a template is checked once at start-up,
so a typo exits 2 naming the word instead of failing every request with a 500.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Mapping, Sequence

from ..errors import TemplateError as TemplateError  # raised here; defined with the others

#: Every key a command word may use. ``{-}`` and ``{--}`` exist so option-like
#: words reach the child without the CLI parser taking them.
KEYS = frozenset(
    {
        "port",
        "unix_socket",
        "base_url",
        "presentation_path",
        "presentation_dirname",
        "presentation_basename",
        "origin_host",
        "-",
        "--",
    }
)

_FORMATTER = string.Formatter()


def _field_base(field_name: str) -> str:
    # "port.real" and "port[0]" are attribute and index access on "port".
    for i, ch in enumerate(field_name):
        if ch in ".[" and i > 0:
            return field_name[:i]
    return field_name


def fields(word: str) -> frozenset[str]:
    """The template keys one command word uses.

    Raises:
        TemplateError: on an unbalanced brace, a positional field (``{}`` or
            ``{0}``) or a key that is not in :data:`KEYS`.
    """
    try:
        parsed = list(_FORMATTER.parse(word))
    except ValueError as exc:
        raise TemplateError(
            f"bad template in command word {word!r}: {exc} (write {{{{ and }}}} for literal braces)"
        ) from None
    used = set()
    for _literal, field_name, _spec, _conversion in parsed:
        if field_name is None:
            continue
        base = _field_base(field_name)
        if base not in KEYS:
            known = ", ".join("{" + k + "}" for k in sorted(KEYS))
            shown = "{" + field_name + "}"
            guess = suggestion(base)
            hint = f" (did you mean {{{guess}}}?)" if guess else ""
            raise TemplateError(
                f"unknown substitution {shown} in command word {word!r}{hint}; known: {known}"
                " (write {{ and }} for literal braces)"
            )
        used.add(base)
    return frozenset(used)


def suggestion(name: str) -> str:
    """The known key closest to a misspelt one (``prot``: ``port``; ``base-url``: ``base_url``), or ''."""
    words = sorted(k for k in KEYS if k.isidentifier())
    folded = name.lower().replace("-", "_")
    if folded in words:
        return folded
    close = difflib.get_close_matches(folded, words, n=1, cutoff=0.6)
    return close[0] if close else ""


def check(command: Sequence[str]) -> frozenset[str]:
    """Validate every word of a command; return the set of keys it uses."""
    used: set[str] = set()
    for word in command:
        used |= fields(word)
    return frozenset(used)


def render(command: Sequence[str], values: Mapping[str, object]) -> list[str]:
    """Render each word with ``str.format``; one word stays one argv element.

    Raises:
        TemplateError: when a format spec does not fit its value
            (``{base_url:d}``), naming the word.
    """
    full = {"-": "-", "--": "--", **values}
    out = []
    for word in command:
        try:
            out.append(word.format(**full))
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            raise TemplateError(f"cannot render command word {word!r}: {exc}") from None
    return out
