"""The one sanitiser for untrusted text, and pasteable commands.

Anything that came from outside (snapshot contents, kernel log lines, GPU names, file names
from an index, a bundle or a folder, a model config) may hold escape sequences that clear a
terminal or overwrite a printed plan, or newlines that turn one printed command into two.
``clean`` makes such text inert for a terminal; ``one_line`` also folds it onto one line;
``shell_join`` builds a command line that pastes as exactly the argv it came from.

Everything here is linear in the length of its input (no backtracking regexes).
"""

from __future__ import annotations

import re
import shlex

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the Unicode
# bidirectional overrides and isolates that reorder what a terminal shows ("Trojan Source").
_UNSAFE = [c for c in range(0x00, 0x20) if c not in (0x09, 0x0A)] + list(range(0x7F, 0xA0))
_UNSAFE += list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A)) + [0x200E, 0x200F, 0x061C]


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_CLEAN = {code: _escape(code) for code in _UNSAFE}
_CLEAN_LINE = {**_CLEAN, 0x0A: "\\n", 0x09: " "}


def clean(text: object) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``), so no byte of it
    acts on a terminal. Newlines and tabs are kept; a CR-LF pair becomes a newline."""
    s = text if isinstance(text, str) else str(text)
    if "\r\n" in s:
        s = s.replace("\r\n", "\n")
    return s.translate(_CLEAN)


def one_line(text: object) -> str:
    """``clean`` and on one line: a newline shows as ``\\n``. For comments after a printed
    command, table cells and error messages."""
    s = text if isinstance(text, str) else str(text)
    return s.replace("\r\n", "\n").translate(_CLEAN_LINE)


def shorten(text: str, limit: int = 200) -> str:
    """At most ``limit`` characters: the start and the end, with the middle elided."""
    if len(text) <= limit:
        return text
    keep = max(limit - 5, 2)
    head = keep * 2 // 3
    return f"{text[:head]} ... {text[len(text) - (keep - head) :]}"


def shorten_list(items: list[str], limit: int = 8) -> str:
    """'a, b, c and 397 more' instead of a 17 KB line."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


_ANSI_C = {0x5C: "\\\\", 0x27: "\\'", 0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r"}


def shell_quote(arg: str) -> str:
    """One argument, quoted so that pasting it into bash or zsh gives exactly ``arg``.

    Printable text uses POSIX quoting (shlex); text with control characters uses ANSI-C
    quoting (``$'...\\x1b...'``), so the printed line holds no raw control byte and no
    real newline."""
    if not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or ord(c) in _CLEAN for c in arg):
        return shlex.quote(arg)
    out = []
    for c in arg:
        code = ord(c)
        if code in _ANSI_C:
            out.append(_ANSI_C[code])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code in _CLEAN:  # C1 controls and bidi marks: \u, which bash writes as UTF-8
            out.append(f"\\u{code:04x}")
        else:
            out.append(c)
    return "$'" + "".join(out) + "'"


def shell_join(argv: list[str] | tuple[str, ...]) -> str:
    """A command line to print for pasting: every argument quoted by ``shell_quote``."""
    return " ".join(shell_quote(str(a)) for a in argv)


# --- secrets ------------------------------------------------------------------------

# Key names whose values are secrets, wherever they appear as key=value / key: value.
_SECRET_WORDS = ("pass", "pwd", "token", "secret", "key", "auth", "credential", "cookie", "session")
# One of the words, not followed by a letter or digit ("api_key", "apikey", "vault_password",
# "HF_TOKEN", "luks.key", but not "keyboard", "Keyring" or "author"), then optionally more of
# the key after a separator ("secret_key_id").
_WORDS = (
    r"(?:pass(?:word|wd|phrase)?|pwd|tokens?|secrets?|keys?|auth(?:orization|token|key)?|credentials?"
    r"|cookies?|session(?:id)?)"
)
_KEY_BODY = rf"(?i:[A-Za-z0-9_.\-]{{0,64}}?{_WORDS}(?![A-Za-z0-9])(?:[_.\-][A-Za-z0-9_.\-]{{0,63}})?)"
# key=value, key: value, "key": "value", key = value. A key starts only where a run of key
# characters starts (the look-behind), both sides are bounded, so a long token is scanned in
# linear time; and only secret keys match, so a harmless key's value (a URL after "https:")
# never swallows the "?token=..." inside it. The value ends at a blank, a quote, '&' (URL
# queries), ',' or ';'.
_KEY_VALUE = re.compile(
    rf"((?<![A-Za-z0-9_.\-]){_KEY_BODY})([\"']?[ \t]{{0,4}}[=:][ \t]{{0,4}}[\"']?)([^\s\"'&,;]{{1,4096}})"
)
# --password hunter2, -api-key X: an option naming a secret, then its value as the next word.
_OPTION_VALUE = re.compile(rf"((?<!\S)--?{_KEY_BODY})([ \t]{{1,4}})(?!-)(\S{{1,4096}})")
_URL_CREDENTIALS = re.compile(r"(://[^\s/:@]{1,256}:)[^\s/@]{1,1024}@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,4096}")
# Tokens recognisable by their shape alone (Hugging Face, OpenAI, GitHub, GitLab, Slack, AWS
# access key ids), wherever they stand.
_TOKEN_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:hf_[A-Za-z0-9]{30,256}|sk-(?:proj-)?[A-Za-z0-9_\-]{20,256}|gh[pousr]_[A-Za-z0-9]{36,256}"
    r"|github_pat_[A-Za-z0-9_]{40,256}|glpat-[A-Za-z0-9_\-]{20,256}|xox[abprs]-[A-Za-z0-9\-]{10,256}|AKIA[0-9A-Z]{16})"
    r"(?![A-Za-z0-9_\-])"
)
REDACTED = "<redacted>"


def _is_secret_key(key: str) -> bool:
    k = key.lower()
    return any(w in k for w in _SECRET_WORDS)


def redact(text: str) -> str:
    """Secrets replaced by ``<redacted>``: values of keys such as ``password=``, ``token:``,
    ``"api_key": "..."``, options such as ``--hf-token X``, credentials in URLs, bearer tokens,
    and tokens of well-known shapes (``hf_...``, ``ghp_...``, ``AKIA...``). The rest is kept,
    since the diagnosis reads it (``nouveau.modeset=0`` stays)."""
    if not text:
        return text

    def keep_marker(m: re.Match[str]) -> str:
        value = m.group(3)
        if value.startswith((REDACTED, "Bearer", "Basic", "<")):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}{REDACTED}"

    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _TOKEN_SHAPES.sub(REDACTED, text)
    text = _OPTION_VALUE.sub(keep_marker, text)
    return _KEY_VALUE.sub(keep_marker, text)


def redact_document(doc):
    """A JSON-able document with ``redact`` applied to every string in it (keys kept)."""
    if isinstance(doc, str):
        return redact(doc)
    if isinstance(doc, dict):
        return {k: redact_document(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [redact_document(v) for v in doc]
    return doc
