"""PII detection and scrubbing: emails, phones, public IPs, cards, SSNs, IBANs, secrets.

Interface (other tools rely on it)::

    find_pii(text)  -> [Span(start, end, kind), ...]     sorted, non-overlapping
    scrub(text)     -> text with each span replaced       (default: a tag such as <EMAIL>)

``scrub`` options: ``mode="tag"`` (``<EMAIL>``), ``"mask"`` (a fixed string),
or ``"pseudonym"``: ``<EMAIL_3f9a1c0b>``, an HMAC of the value under a secret
salt and a per-document key, so the same value gets the same pseudonym inside
a document, and the pseudonym cannot be reversed by hashing candidate values
without the salt.

Precision over regex alone: every candidate is validated.

* ``EMAIL``: a dotted domain with an alphabetic TLD; not ``git@host:path``
  remotes, ``@decorators``, ``pkg@1.2.3`` or ``user@localhost``.
* ``PHONE``: candidates are digit runs with phone punctuation; each is parsed
  and validated by libphonenumber (``phonenumbers``) for the number's own
  country (``+`` prefix) or the configured national regions; a bare run of
  digits with no separators needs a phone word (tel, call, phone, ...) nearby.
  In an unmistakable phone context ("Tel.:", "Phone:", "call", or the
  ``+1 (NNN) NNN-NNNN`` layout) a number libphonenumber calls unassigned is
  still a phone when it has a full possible length and the shape of its
  country's numbers (its general pattern; the trunk 0 when written nationally).
* ``IP_ADDRESS``: public addresses only (``ipaddress``: not private,
  loopback, link-local, documentation or reserved), and not version strings,
  OIDs or section numbers (a dotted quad after "version", "v", "python", ...).
  IPv6: full, compressed (``::``) and IPv4-mapped (``::ffff:a.b.c.d``, public
  when its IPv4 address is) forms, in global unicast space (2000::/3), so
  times, MACs in hex pairs and ``std::vector``-like scopes never parse as one.
* ``CREDIT_CARD``: 13-19 digits with consistent spaces or dashes, a card
  network prefix, and a valid Luhn check digit.
* ``US_SSN``: ``AAA-GG-SSSS`` (dashes or spaces) in the valid ranges: no 000,
  666 or 9xx area, no 00 group, no 0000 serial.
* ``IBAN``: a country code with its IBAN length and a valid mod-97 check.
* ``SECRET``: provider keys and tokens (AWS, GitHub, GitLab, Slack, Stripe,
  Google API), JWT-shaped tokens anywhere (``eyJ`` header, signed, unsigned or
  encrypted), private key blocks (BEGIN..END; a block without its END line
  runs to its last base64-looking line), credentials in URLs, and values
  assigned to password/secret/token/key names (not placeholders or variable
  references). In environment-style assignments (``export NAME=...``, .env,
  Dockerfile ENV, compose ``- NAME=...``) the value is a literal even when it
  looks like a dotted name, and ``*_KEY`` names count when the value looks
  like a key (16+ characters, a stretch mixing letters and digits). Git SHAs,
  checksums and UUIDs are never matched on their own.

Excerpts: ``scrub_prefix`` scrubs a prefix exactly as the whole text would be
scrubbed (``excerpt_window`` says how much of the text that needs), and
``safe_cut`` finds a cut that splits no finding, for excerpts kept raw and
scrubbed later.

Speed: each kind is only looked for when a cheap pre-check passes (an ``@``,
a run of digits, an uppercase country code, a key prefix or keyword), with
precompiled patterns; most web text skips most kinds entirely.

This is the pure core and imports no Beam: the dead-letter and excerpt
scrubbing (:mod:`transforms.accounting`), the report and the benchmarks use it
without a pipeline. The Beam step is :class:`transforms.text.pii_step.ScrubPii`
(the layout of the text stages is described there).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import re
import string
from typing import List, Optional, Sequence, Tuple

__all__ = ["Span", "KINDS", "PiiConfig", "PiiScrubber", "find_pii", "scrub", "luhn_valid",
           "iban_valid", "ssn_valid", "excerpt_window", "scrub_prefix", "safe_cut", "EXCERPT_MARGIN"]

KINDS = ("EMAIL", "PHONE", "IP_ADDRESS", "CREDIT_CARD", "US_SSN", "IBAN", "SECRET")
# When two findings overlap, the earlier kind in this order wins.
_PRIORITY = {"SECRET": 0, "EMAIL": 1, "IBAN": 2, "CREDIT_CARD": 3, "US_SSN": 4, "PHONE": 5,
             "IP_ADDRESS": 6}


@dataclasses.dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    kind: str

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "kind": self.kind}


@dataclasses.dataclass(frozen=True)
class PiiConfig:
    kinds: Tuple[str, ...] = KINDS
    phone_regions: Tuple[str, ...] = ("US", "GB")  # national formats accepted for these
    mode: str = "tag"  # tag | mask | pseudonym
    mask: str = "[REDACTED]"
    salt: str = ""  # required for pseudonyms

    def __post_init__(self):
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}; choose from {KINDS}")
        if self.mode not in ("tag", "mask", "pseudonym"):
            raise ValueError(f"mode must be tag, mask or pseudonym, got {self.mode!r}")
        if self.mode == "pseudonym" and not self.salt:
            raise ValueError("pseudonym mode needs a secret salt")


# ---------------------------------------------------------------------------
# Validators


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_network(digits: str) -> Optional[str]:
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= p3 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if p2 in (50, 56, 57, 58, 63, 67) and 12 <= n <= 19:
        return "maestro"
    return None


def ssn_valid(area: str, group: str, serial: str) -> bool:
    a = int(area)
    return (a != 0 and a != 666 and a < 900 and int(group) != 0 and int(serial) != 0)


# ISO 13616 IBAN lengths by country (the registry's published lengths).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def iban_valid(compact: str) -> bool:
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


# ---------------------------------------------------------------------------
# Patterns

_LOCAL_CHARS = frozenset(string.ascii_letters + string.digits + "._%+-")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])")
# Runs of digits with phone/card punctuation: one scan serves phones, cards and SSNs.
_DIGIT_RUNS = re.compile(r"\d[\d \t().\-/]{5,24}\d")
_DIGIT_GROUPS = re.compile(r"\d+")
_DATE_IN_RUN = re.compile(r"(?<!\d)(?:(?:19|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])|"
                          r"(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:19|20)\d\d)(?!\d)")
_DOTTED_NUMBER = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}|\d+\.\d+")
_PHONE_WORDS = re.compile(r"(?i)\b(?:tel|telephone|phone|call|mobile|cell|fax|whatsapp|contact|"
                          r"dial|ring|text|sms|hotline|helpline)\b|☎|📞")
# Words that leave no doubt that the number after them is a phone number, with only
# non-digits on the same line between ("Tel.: ", "Phone: ", "call us at ").
_PHONE_CONTEXT = re.compile(
    r"(?i)(?:\b(?:tel|telephone|phone|mobile|fax|call|dial|whatsapp|hotline|helpline|"
    r"t[ée]l[ée]phone|telefon|tel[ée]fono|telefono)\b|☎|📞)[^\d\n]{0,24}$")
# The international layout with a bracketed area code: +1 (NNN) NNN-NNNN, +44 (20) 7946 0958.
_PHONE_LAYOUT = re.compile(r"\+\d{1,3}[ .\-]?\(\d{1,5}\)[ .\-]?\d{2,5}(?:[ .\-]\d{2,5}){1,3}")
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
# Every IPv6 address holds one of these (::ffff:a.b.c.d and ::1 only the second); the
# address scan starts just before the first. Written from the colon (a hex digit before it
# checked behind), so that re looks for the colon alone: a pattern opening with a hex digit
# stops at every a-f of the prose (8x slower here). A match starts 1 past the hex digit.
_IPV6_PRECHECK = re.compile(r":(?<=[0-9A-Fa-f]:)[0-9A-Fa-f]{0,4}:")
_IPV6_PRECHECK_LEADING = re.compile(r"::[0-9A-Fa-f]")
# A sentence may end right after an address ("... from 2001:4860::8888."): only a dot
# that continues a number (an embedded IPv4 cut short) rules the match out.
_IPV6 = re.compile(r"(?<![\w:.])((?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}"
                   r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?)(?![\w:]|\.\d)")
# Public IPv6 addresses are global unicast (2000::/3); everything else parseable is
# reserved, private, link-local, multicast, or a look-alike: a MAC or EUI-64 in hex pairs
# (00:1a:...), a time (12:30:45 does not parse), a C++/Perl scope of hex-letter names
# (cafe::bad, std::vector does not parse).
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_VERSION_WORDS = re.compile(
    r"(?i)(?:\bv|version|\bver\b|release|python|build|firmware|\brev\b|update|upgrade|sdk|"
    r"api|package|library|section|chapter|§|oid|rule|step|clause|figure|table|paragraph|"
    r"node|npm|pip|==|>=|<=|~=)[\s:=#.\-]*$")
_CARD = re.compile(r"\d(?:[ \-]?\d){11,18}")
_SSN = re.compile(r"(\d{3})([\- ])(\d{2})\2(\d{4})")
_IBAN_START = re.compile(r"[A-Z]{2}\d{2}")

# (literal(s), or a regex with a literal prefix, that must occur; pattern): the
# pattern runs only when the cheap check finds its trigger in the text.
_SECRET_PATTERNS = [
    (("AKIA", "ASIA", "ABIA", "ACCA"),
     re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![A-Za-z0-9])")),
    (re.compile(r"gh[pousr]_"),
     re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36}(?![A-Za-z0-9])")),
    ("github_pat_", re.compile(r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{82}(?![A-Za-z0-9_])")),
    ("glpat-", re.compile(r"(?<![A-Za-z0-9_\-])glpat-[A-Za-z0-9_\-]{20}(?![A-Za-z0-9_\-])")),
    ("xox", re.compile(r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9\-]{10,}")),
    ("hooks.slack.com", re.compile(
        r"https://hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+")),
    (re.compile(r"k_(?:live|test)_"),
     re.compile(r"(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}(?![A-Za-z0-9])")),
    ("AIza", re.compile(r"(?<![A-Za-z0-9_\-])AIza[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_\-])")),
    # JWT shape: a base64 JSON header ({" is always "eyJ"), then a signed token
    # (payload.signature, the signature empty for alg "none") or an encrypted one (five
    # parts, the key part empty for direct encryption); the payload may be anything.
    # base64url as the standard says, or standard base64 with padding as some libraries write.
    ("eyJ", re.compile(
        r"(?<![A-Za-z0-9_\-.+/])eyJ[A-Za-z0-9_\-+/]{5,}={0,2}\."
        r"(?:[A-Za-z0-9_\-+/]*={0,2}\.[A-Za-z0-9_\-+/]+={0,2}\.[A-Za-z0-9_\-+/]+={0,2}\."
        r"[A-Za-z0-9_\-+/]+={0,2}|"
        r"[A-Za-z0-9_\-+/]{2,}={0,2}\.(?:[A-Za-z0-9_\-+/]+={0,2})?)(?![A-Za-z0-9_\-+/=])")),
]
# Private keys (PEM, OpenSSH, PGP armour): the whole BEGIN..END block; a block without
# its END line (cut short, pasted in part) runs to its last base64-looking line.
_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_LINE_BREAK = re.compile(r"\r?\n|\\r\\n|\\n")  # real newlines, or \n escapes in JSON/code
_PEM_HEADER = re.compile(r"[A-Za-z][A-Za-z0-9\-]*: ")  # Proc-Type:, DEK-Info:, Version:, Comment:
_BASE64_WORDS = re.compile(r"[A-Za-z0-9+/=]+(?:[ \t]+[A-Za-z0-9+/=]+)*")
_QUOTES = "\"'`"
_NON_SPACE = re.compile(r"\S*")
_URL_CREDENTIALS = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://([^\s:/@?#]+:[^\s/@?#]+)@[A-Za-z0-9\[]")
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential")
# Anchored where a secret word was found: the rest of the key name, an
# assignment operator, and the value (quoted, or a bare token).
_ASSIGNMENT_AT = re.compile(
    r"[A-Za-z0-9_.\-]*[\"']?[ \t]*(?::=|=>|=|:)[ \t]*"
    r"(?:\"([^\"\n]{1,256})\"|'([^'\n]{1,256})'|([^\s\"',;)}\]]{1,256}))")
# What the whole key name must contain to be a secret's name ("key" alone is not).
_SECRET_KEY_NAME = re.compile(
    r"pass|pwd|secret|token|api.?key|apikey|access.?key|private.?key|auth|credential|signing.?key")
_AUTH_SCHEME = re.compile(r"(?i)(?:bearer|basic|token|digest)(?: +|$)")
_BARE_TOKEN = re.compile(r"[ \t]+([^\s\"',;)}\]]{4,256})")
_KEY_REST = re.compile(r"[a-z0-9_.\-]*")
_KEY_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
# An environment-style assignment: an UPPER_SNAKE name at the start of a line (after
# export / ENV / set / a YAML list dash), "=" right after it: shell, .env, Dockerfile,
# docker-compose. Its value is a literal, never a code expression.
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_ENV_LEAD = re.compile(r"[ \t]*(?:(?:export|ENV|set|declare -x|-)[ \t]+)?")
# Names that end in _KEY but hold no secret.
_PUBLIC_KEY_PARTS = frozenset(("public", "pub", "primary", "foreign", "sort", "partition", "cache",
                               "hot", "shortcut", "idempotency", "routing", "lookup"))
_VALUE_PARTS = re.compile(r"[_\-.]")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:\$|%|\{|<|\[|\(|\?|:-|os\.|process\.env|env\(|getenv|environ|config\.|settings\.|self\.|"
    r"none$|null$|nil$|true$|false$|undefined$|\*+$|x+$|\.\.\.$|your[_\- ]|<|example|"
    r"redacted|placeholder|required$|optional$|string$|str$|int$|secret$|password$|token$)")
_PROSE_VALUE = re.compile(r"^[a-z]+$")
# An unquoted value that is an expression: a dotted name, a call or an index.
_CODE_REFERENCE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+(?:$|[(\[.])|"
                             r"[A-Za-z_][A-Za-z0-9_.]*[(\[]")


def _add(spans: List[Span], start: int, end: int, kind: str) -> None:
    if end > start:
        spans.append(Span(start, end, kind))


def _plausible_number(number, raw: str, international: bool) -> bool:
    """A number that may not be assigned but has the shape of its country's numbers:
    a full possible length (not a local-only one), the national numbering plan's
    general pattern ((123) 456-7890 is no NANP number: no area code starts with 1),
    and, written nationally outside NANP, the trunk prefix (0161 ..., not 161 ...)."""
    import phonenumbers
    from phonenumbers import PhoneMetadata

    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return False
    region = phonenumbers.region_code_for_country_code(number.country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region)
    if metadata is None or metadata.general_desc is None:
        return False
    national = phonenumbers.national_significant_number(number)
    if not re.fullmatch(metadata.general_desc.national_number_pattern or "$^", national):
        return False
    if international or number.country_code == 1 or not metadata.national_prefix:
        return True
    digits = "".join(ch for ch in raw if ch.isdigit())
    return digits.startswith(metadata.national_prefix)


def _env_assignment(text: str, name_start: int, name_end: int) -> bool:
    """``NAME=value`` at the start of a line, NAME in UPPER_SNAKE case (shell, .env, Dockerfile)."""
    if name_end >= len(text) or text[name_end] != "=" or text[name_end + 1:name_end + 2] in ("=", ">"):
        return False
    if not _ENV_NAME.fullmatch(text, name_start, name_end):
        return False
    line_start = text.rfind("\n", 0, name_start) + 1
    return _ENV_LEAD.fullmatch(text, line_start, name_start) is not None


def _token_like(value: str) -> bool:
    """A key's value, not a name, a path or a URL: 16+ characters without whitespace,
    one stretch of 8+ (between _ - .) mixing letters and digits (hex, base64, random)."""
    if len(value) < 16 or value[0] in "/~.$" or "://" in value or any(ch.isspace() for ch in value):
        return False
    return any(len(part) >= 8 and any(ch.isdigit() for ch in part) and any(ch.isalpha() for ch in part)
               for part in _VALUE_PARTS.split(value))


def _key_block_end(text: str, begin) -> int:
    """Where the private-key block opened by the BEGIN line ``begin`` (a match) ends.

    At its END line when one follows before the next BEGIN; otherwise (a key cut short
    or pasted in part) after its last base64-looking line: header lines (Proc-Type:,
    DEK-Info:, Version:) and blank lines may come before the body; the body is lines of
    base64 words; the first other line ends it, keeping only its leading base64 words
    (a line cut mid-way, a flattened key followed by prose); the end of the text ends it.
    """
    pos = begin.end()
    nxt = _PEM_BEGIN.search(text, pos)
    limit = nxt.start() if nxt else len(text)
    end = _PEM_END.search(text, pos, limit)
    if end:
        return end.end()
    block_end, body = pos, False
    while pos < limit:
        brk = _PEM_LINE_BREAK.search(text, pos, limit)
        line_end = brk.start() if brk else limit
        lo, hi = pos, line_end
        while lo < hi and (text[lo] in " \t" or text[lo] in _QUOTES):
            lo += 1
        while hi > lo and (text[hi - 1] in " \t\r,;+\\" or text[hi - 1] in _QUOTES):
            hi -= 1
        if lo == hi:
            if body:
                break  # a blank line after the body
        elif not body and _PEM_HEADER.match(text, lo, hi):
            block_end = hi
        else:
            words = _BASE64_WORDS.match(text, lo, hi)
            if words and words.end() == hi:
                body, block_end = True, hi
            else:
                if words and (words.end() - lo >= 16 or pos == begin.end()):
                    block_end = words.end()  # the base64 start of a cut or run-on line
                break
        if not brk:
            break
        pos = brk.end()
    return block_end


def _private_key_blocks(text: str) -> List[Tuple[int, int]]:
    blocks, covered = [], 0
    for begin in _PEM_BEGIN.finditer(text):
        if begin.start() < covered:
            continue
        covered = _key_block_end(text, begin)
        blocks.append((begin.start(), covered))
    return blocks


class PiiScrubber:
    """The detector and scrubber; build once (patterns, phone metadata), call per text."""

    def __init__(self, config: PiiConfig = PiiConfig()):
        self.config = config
        self._kinds = frozenset(config.kinds)
        self._regions = tuple(config.phone_regions)

    # ----------------------------------------------------------- detectors
    def _emails(self, text: str, spans: List[Span]) -> None:
        n = len(text)
        at = text.find("@")
        while at != -1:
            start = at
            while start > 0 and at - start < 64 and text[start - 1] in _LOCAL_CHARS:
                start -= 1
            while start < at and not text[start].isalnum():
                start += 1  # a local part starts with a letter or digit
            m = _DOMAIN.match(text, at + 1)
            if m and start < at and text[at - 1] != "." and (start == 0 or text[start - 1] != "@"):
                end = m.end()
                remote = end + 1 < n and text[end] == ":" and not text[end + 1].isspace()
                if not remote:  # git@github.com:org/repo.git: an ssh remote, not an address
                    _add(spans, start, end, "EMAIL")
            at = text.find("@", at + 1)

    def _digit_runs(self, text: str, runs, spans: List[Span]) -> None:
        """Cards, SSNs and phones, from the scan for runs of digits."""
        kinds = self._kinds
        n = len(text)
        for run in runs:
            start, end = run.span()
            before = text[start - 1] if start else " "
            after = text[end] if end < n else " "
            if after.isalnum() or after == "_" or before.isalnum() or before == "_":
                continue  # part of a longer token: an id, a hash, a version
            if (after in ".-" and end + 1 < n and text[end + 1].isdigit()) or (
                    before in ".-" and start > 1 and text[start - 2].isdigit()):
                continue  # a longer number (decimals, ranges, ISBN parts)
            if before in "-#/" and start > 1 and (text[start - 2].isalnum() or before == "#"):
                continue  # INV-2023-004512, #100234987: identifiers
            core = run.group()
            if "CREDIT_CARD" in kinds and _CARD.fullmatch(core):
                self._card(core, start, spans)
            if "US_SSN" in kinds:
                m = _SSN.fullmatch(core)
                if m and ssn_valid(m.group(1), m.group(3), m.group(4)):
                    _add(spans, start, end, "US_SSN")
            if "PHONE" in kinds and before not in "/":
                self._phone(text, start, end, spans)

    def _card(self, raw: str, start: int, spans: List[Span]) -> None:
        seps = {ch for ch in raw if not ch.isdigit()}
        if len(seps) > 1:
            return
        digits = raw.replace(" ", "").replace("-", "")
        if not 13 <= len(digits) <= 19 or not _card_network(digits) or not luhn_valid(digits):
            return
        if seps:  # groups of 4, or Amex/Diners 4-6-5 / 4-6-4
            groups = [len(g) for g in re.split(r"[ \-]", raw)]
            if not (all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4
                    or groups in ([4, 6, 5], [4, 6, 4])):
                return
        _add(spans, start, start + len(raw), "CREDIT_CARD")

    def _phone(self, text: str, start: int, end: int, spans: List[Span]) -> None:
        import phonenumbers
        from phonenumbers import Leniency, PhoneNumberMatcher

        # take a leading "+" or "(" that the digit scan left out
        if start and text[start - 1] == "(":
            start -= 1
        if start and text[start - 1] == "+":
            start -= 1
        core = text[start:end]
        digits = sum(ch.isdigit() for ch in core)
        if digits < 7 or digits > 15 or _DOTTED_NUMBER.fullmatch(core):
            return  # IPs, versions and decimals are not phones
        if _DATE_IN_RUN.search(core):
            return  # 2019-02-01 14:30, 12/10/2023: dates and times
        groups = _DIGIT_GROUPS.findall(core.replace("(0)", ""))  # +33 (0)4 ...: trunk zero
        plus = core.startswith("+")
        # after the country code (and, in international form, one area digit as
        # in +33 1 / +81 3 / +61 2) no phone has single-digit groups
        rest = groups[2:] if plus else groups[1:]
        if len(groups) > 7 or any(len(g) == 1 for g in rest) or (
                not plus and len(groups[0]) == 1 and len(groups) > 1 and groups[0] != "1"):
            return  # "1 2 3 4 5 6 7", lists and tables
        if core.isdigit() or (core.startswith("+") and core[1:].isdigit()):
            if not _PHONE_WORDS.search(text[max(0, start - 40):start]):
                return  # a bare run of digits is an id until something says phone
        international = core.lstrip("(").startswith("+")
        for region in ((None,) if international else self._regions):
            try:  # cheap rejection before the matcher's full checks
                if not phonenumbers.is_valid_number(phonenumbers.parse(core, region)):
                    continue
            except phonenumbers.NumberParseException:
                continue
            found = False
            for match in PhoneNumberMatcher(core, region, leniency=Leniency.VALID):
                _add(spans, start + match.start, start + match.end, "PHONE")
                found = True
            if found:
                return
        # libphonenumber knows assigned ranges only; where the context leaves no doubt
        # ("Tel.: ", "call", +1 (NNN) NNN-NNNN) a number of a possible length for its
        # region is a phone number too (new or unlisted ranges, fictional 555 numbers).
        if not (_PHONE_CONTEXT.search(text, max(0, start - 40), start)
                or _PHONE_LAYOUT.fullmatch(core)):
            return
        for region in ((None,) if international else self._regions):
            found = False
            for match in PhoneNumberMatcher(core, region, leniency=Leniency.POSSIBLE):
                if _plausible_number(match.number, match.raw_string, international):
                    _add(spans, start + match.start, start + match.end, "PHONE")
                    found = True
            if found:
                return

    def _ipv6(self, text: str, pos: int, spans: List[Span]) -> None:
        for m in _IPV6.finditer(text, pos):
            try:  # full (8 groups), compressed (::) and with an embedded IPv4 (::ffff:a.b.c.d)
                ip = ipaddress.IPv6Address(m.group(1))
            except ValueError:
                continue  # 12:30:45, 00:1A:2B:3C:4D:5E, std::vector: not addresses
            mapped = ip.ipv4_mapped
            if mapped is not None:  # ::ffff:a.b.c.d is public when the IPv4 address is
                public = mapped.is_global and not mapped.is_multicast
            else:
                public = ip in _IPV6_GLOBAL_UNICAST and ip.is_global
            if public:
                _add(spans, m.start(1), m.end(1), "IP_ADDRESS")

    def _ipv4(self, text: str, m, spans: List[Span]) -> None:
        n = len(text)
        start, end = m.span()
        if start and (text[start - 1].isalnum() or text[start - 1] in "._-"):
            return
        if end < n and (text[end].isalnum() or text[end] in "_-" or (
                text[end] == "." and end + 1 < n and text[end + 1].isdigit())):
            return  # OIDs, longer dotted numbers
        value = m.group()
        if any(len(octet) > 1 and octet[0] == "0" for octet in value.split(".")):
            return
        try:
            ip = ipaddress.IPv4Address(value)
        except ValueError:
            return
        if not ip.is_global or ip.is_multicast:
            return
        if _VERSION_WORDS.search(text[max(0, start - 24):start]):
            return
        _add(spans, start, end, "IP_ADDRESS")

    def _ibans(self, text: str, runs, spans: List[Span]) -> None:
        starts = set()
        for run in runs:  # an IBAN starts at most 44 characters before its digits
            for m in _IBAN_START.finditer(text, max(0, run.start() - 44), run.end()):
                starts.add(m.start())
        for m in (_IBAN_START.match(text, i) for i in sorted(starts)):
            if m.start() and text[m.start() - 1].isalnum():
                continue
            length = IBAN_LENGTHS.get(text[m.start():m.start() + 2])
            if not length:
                continue
            i, compact = m.start(), []
            n = len(text)
            while i < n and len(compact) < length:
                ch = text[i]
                if ch.isalnum() and ch.isascii():
                    compact.append(ch.upper())
                elif ch == " " and compact and i + 1 < n and text[i + 1] != " ":
                    pass
                else:
                    break
                i += 1
            if len(compact) != length or (i < n and text[i].isalnum()):
                continue
            if iban_valid("".join(compact)):
                _add(spans, m.start(), i, "IBAN")

    def _secrets(self, text: str, spans: List[Span]) -> None:
        if "PRIVATE KEY" in text:
            for start, end in _private_key_blocks(text):
                _add(spans, start, end, "SECRET")
        for literal, pattern in _SECRET_PATTERNS:
            if isinstance(literal, tuple):
                if not any(p in text for p in literal):
                    continue
            elif isinstance(literal, str):
                if literal not in text:
                    continue
            elif not literal.search(text):  # a regex with a literal prefix: as fast as find
                continue
            for m in pattern.finditer(text):
                _add(spans, m.start(), m.end(), "SECRET")
        if "://" in text and "@" in text:
            for m in _URL_CREDENTIALS.finditer(text):
                _add(spans, m.start(1), m.end(1), "SECRET")
        if "=" not in text and ":" not in text:
            return
        low = text.lower()
        seen = set()
        for word in _SECRET_WORDS:
            i = low.find(word)
            while i != -1:
                self._assignment(text, low, i, seen, spans)
                i = low.find(word, i + 1)

    def _assignment(self, text: str, low: str, i: int, seen: set, spans: List[Span]) -> None:
        # the rest of the key name, an operator and a value; then back to the name's start
        m = _ASSIGNMENT_AT.match(text, i)
        if not m:
            return
        start = i
        while start > 0 and text[start - 1] in _KEY_CHARS:
            start -= 1
        if start in seen:
            return
        seen.add(start)
        if start > 1 and text[start - 2:start] in ("${", "$("):
            return  # ${POSTGRES_PASSWORD:?required}: the name of a variable, not an assignment
        key_end = _KEY_REST.match(low, i).end()
        key = low[start:key_end]
        env = _env_assignment(text, start, key_end)
        secret_name = _SECRET_KEY_NAME.search(key) is not None
        if not secret_name and not (env and key.endswith("_key")
                                    and not _PUBLIC_KEY_PARTS.intersection(key.split("_"))):
            return  # "monkey: ...", "keyboard = ...", SORT_KEY=...
        group = 1 if m.group(1) is not None else 2 if m.group(2) is not None else 3
        value = m.group(group)
        value_start = m.start(group)
        scheme = _AUTH_SCHEME.match(value)
        if scheme:  # "Authorization: Bearer <token>": the token is the secret
            value_start += scheme.end()
            value = value[scheme.end():]
            if group == 3:  # a bare "Bearer" then the token after the space
                t = _BARE_TOKEN.match(text, m.end(group))
                if not t:
                    return
                value_start, value = t.start(1), t.group(1)
        if not value or len(value) < 4 or _PLACEHOLDER.search(value):
            return
        if not secret_name and not _token_like(value):
            return  # STRIPE_KEY=sk_..., not CACHE_KEY_PREFIX=user_profile or SSH_KEY=~/.ssh/id
        if env:
            pass  # a shell/.env value is a literal: a dotted token is not code, a word is a value
        elif group == 3:
            if _CODE_REFERENCE.match(value):
                return  # request.form.get(...), var.db_password, settings["x"]: code, not a literal
            prefix = text[max(0, m.start(group) - 300):m.start(group)]
            env_style = prefix.rstrip(" \t").endswith("=") and not prefix.endswith((" ", "\t"))
            if not env_style and (_PROSE_VALUE.match(value) or len(value) < 6):
                return  # "password: reset" in prose
        _add(spans, value_start, value_start + len(value), "SECRET")

    # --------------------------------------------------------------- public
    def find(self, text: str) -> List[Span]:
        spans: List[Span] = []
        kinds = self._kinds
        if "SECRET" in kinds:
            self._secrets(text, spans)
        if "EMAIL" in kinds and "@" in text:
            self._emails(text, spans)
        if _DIGIT_PAIR.search(text) is not None:
            # One scan for runs of digits drives cards, SSNs, phones, IPv4 (a
            # dotted quad is such a run) and IBANs (every IBAN holds one).
            runs = list(_DIGIT_RUNS.finditer(text))
            if runs:
                if "IBAN" in kinds:
                    self._ibans(text, runs, spans)
                if kinds & {"CREDIT_CARD", "US_SSN", "PHONE"}:
                    self._digit_runs(text, runs, spans)
                if "IP_ADDRESS" in kinds:
                    for run in runs:
                        for m in _IPV4.finditer(text, run.start(), run.end()):
                            self._ipv4(text, m, spans)
        # IPv6 outside the digit gate: 2abc:def0:... may hold no two adjacent digits
        if "IP_ADDRESS" in kinds and text.count(":") >= 2:
            hit = _IPV6_PRECHECK.search(text)
            first = hit.start() - 1 if hit else None  # the hex digit before the colon
            if "::" in text:
                lead = _IPV6_PRECHECK_LEADING.search(text, 0, first + 2 if hit else len(text))
                if lead:
                    first = lead.start()
            if first is not None:
                self._ipv6(text, max(0, first - 5), spans)
        return _resolve(spans)

    def pseudonym(self, value: str, kind: str, doc_key: str = "") -> str:
        digest = hmac.new(self.config.salt.encode("utf-8"),
                          f"{doc_key}\x00{kind}\x00{value}".encode("utf-8", "surrogatepass"),
                          hashlib.sha256).hexdigest()[:8]
        return f"<{kind}_{digest}>"

    def scrub(self, text: str, doc_key: str = "") -> Tuple[str, List[Span]]:
        spans = self.find(text)
        if not spans:
            return text, spans
        out, last = [], 0
        for span in spans:
            out.append(text[last:span.start])
            if self.config.mode == "tag":
                out.append(f"<{span.kind}>")
            elif self.config.mode == "mask":
                out.append(self.config.mask)
            else:
                out.append(self.pseudonym(text[span.start:span.end], span.kind, doc_key))
            last = span.end
        out.append(text[last:])
        return "".join(out), spans


_DIGIT_PAIR = re.compile(r"\d\d|\d\.\d|\d:|:\d|::")


def _resolve(spans: List[Span]) -> List[Span]:
    """Sorted, non-overlapping: on overlap the higher-priority (then longer) span wins."""
    if len(spans) < 2:
        return sorted(spans)
    ranked = sorted(spans, key=lambda s: (_PRIORITY[s.kind], -(s.end - s.start), s.start))
    kept: List[Span] = []
    for span in ranked:
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept)


_DEFAULT: Optional[PiiScrubber] = None


def _default() -> PiiScrubber:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PiiScrubber()
    return _DEFAULT


def find_pii(text: str, scrubber: Optional[PiiScrubber] = None) -> List[Span]:
    """Spans of PII in ``text`` (``start``, ``end``, ``kind``), sorted and non-overlapping."""
    return (scrubber or _default()).find(text)


def scrub(text: str, mode: str = "tag", mask: str = "[REDACTED]", salt: str = "",
          doc_key: str = "", kinds: Sequence[str] = KINDS) -> str:
    """``text`` with every PII span replaced by a tag, a mask or a keyed pseudonym."""
    if mode == "tag" and mask == "[REDACTED]" and not salt and tuple(kinds) == KINDS:
        scrubber = _default()
    else:
        scrubber = PiiScrubber(PiiConfig(kinds=tuple(kinds), mode=mode, mask=mask, salt=salt))
    return scrubber.scrub(text, doc_key)[0]


# ---------------------------------------------------------------------------
# Excerpts: a prefix of a text, scrubbed as if the whole text had been

# Every finding that holds whitespace is short (a quoted assigned value: at most 256
# characters and its closing quote; phones, cards, IBANs: under 70) or a private-key
# block; every other one (emails, tokens, URLs, JWTs) is a run of non-whitespace of any
# length. Detectors look at most a few characters to the right of a finding.
EXCERPT_MARGIN = 512


def excerpt_window(text: str, limit: int, margin: int = EXCERPT_MARGIN) -> int:
    """Length of a prefix of ``text`` in which every finding that overlaps ``text[:limit]``
    is found exactly as in the whole text.

    ``limit + margin`` characters, grown to the end of the whitespace-free run cut
    there (plus the character after it), and to the end of every private-key block
    that begins inside: nothing that overlaps the first ``limit`` characters is cut.
    """
    n = len(text)
    end = limit + margin
    if end >= n:
        return n
    end = min(n, _NON_SPACE.match(text, end).end() + 1)
    if "PRIVATE KEY" in text:
        for begin in _PEM_BEGIN.finditer(text, 0, end):
            end = max(end, min(n, _key_block_end(text, begin) + 1))
    return end


def _tag(scrubber: PiiScrubber, text: str, span: Span, doc_key: str) -> str:
    if scrubber.config.mode == "tag":
        return f"<{span.kind}>"
    if scrubber.config.mode == "mask":
        return scrubber.config.mask
    return scrubber.pseudonym(text[span.start:span.end], span.kind, doc_key)


def scrub_prefix(text: str, limit: int, scrubber: Optional[PiiScrubber] = None,
                 doc_key: str = "") -> str:
    """The first ``limit`` characters of ``text`` with PII replaced, as ``scrub`` of the
    whole text would replace it: a finding that runs past the cut becomes its whole tag,
    and none is missed because the cut fell inside it."""
    scrubber = scrubber or _default()
    spans = scrubber.find(text[:excerpt_window(text, limit)])
    out, last = [], 0
    for span in spans:
        if span.start >= limit:
            break
        out.append(text[last:span.start])
        out.append(_tag(scrubber, text, span, doc_key))
        last = span.end
    if last < limit:
        out.append(text[last:limit])
    return "".join(out)


def safe_cut(text: str, limit: int, scrubber: Optional[PiiScrubber] = None) -> int:
    """A cut at or after ``limit`` that splits no finding: ``scrub(text[:cut])`` finds
    every finding of the whole text that lies in ``text[:cut]``.

    A finding the cut falls into, or ends within 2 characters of (a closing quote, the
    ``@host`` after URL credentials), moves the cut past it; at most one excerpt window
    further (usually not at all).
    """
    if len(text) <= limit:
        return len(text)
    scrubber = scrubber or _default()
    cut = limit
    while True:
        window = excerpt_window(text, cut)
        moved = cut
        for span in scrubber.find(text[:window]):
            if span.start < moved < span.end + 2:
                moved = min(len(text), span.end + 2)
        if moved == cut or moved >= len(text):
            return moved
        cut = moved
