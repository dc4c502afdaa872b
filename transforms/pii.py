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
* ``IP_ADDRESS``: public addresses only (``ipaddress``: not private,
  loopback, link-local, documentation or reserved), and not version strings,
  OIDs or section numbers (a dotted quad after "version", "v", "python", ...).
* ``CREDIT_CARD``: 13-19 digits with consistent spaces or dashes, a card
  network prefix, and a valid Luhn check digit.
* ``US_SSN``: ``AAA-GG-SSSS`` (dashes or spaces) in the valid ranges: no 000,
  666 or 9xx area, no 00 group, no 0000 serial.
* ``IBAN``: a country code with its IBAN length and a valid mod-97 check.
* ``SECRET``: provider keys and tokens (AWS, GitHub, GitLab, Slack, Stripe,
  Google API, JWT), private key blocks, credentials in URLs, and values
  assigned to password/secret/token/key names (not placeholders or variable
  references). Git SHAs, checksums and UUIDs are never matched on their own.

Speed: each kind is only looked for when a cheap pre-check passes (an ``@``,
a run of digits, an uppercase country code, a key prefix or keyword), with
precompiled patterns; most web text skips most kinds entirely.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = ["Span", "KINDS", "PiiConfig", "PiiScrubber", "find_pii", "scrub", "luhn_valid",
           "iban_valid", "ssn_valid"]

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

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-@])"
    r"([A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?)"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![A-Za-z0-9\-])")
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w.+/\-])(\+?\(?\d[\d\s().\-/]{5,20}\d)(?:\s*(?:ext\.?|x|#)\s*\d{1,6})?(?![\w.\-]?\d)")
_PHONE_WORDS = re.compile(r"(?i)\b(?:tel|telephone|phone|call|mobile|cell|fax|whatsapp|contact|"
                          r"dial|ring|text|sms|hotline|helpline)\b|☎|📞")
_IPV4 = re.compile(r"(?<![\w.\-])((?:\d{1,3}\.){3}\d{1,3})(?![\w\-]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])((?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}"
                   r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?)(?![\w:.])")
_VERSION_WORDS = re.compile(
    r"(?i)(?:\bv|version|\bver\b|release|python|build|firmware|\brev\b|update|upgrade|sdk|"
    r"api|package|library|section|chapter|§|oid|rule|step|clause|figure|table|paragraph|"
    r"node|npm|pip|==|>=|<=|~=)[\s:=#.\-]*$")
_CARD = re.compile(r"(?<![\w\-.])(\d(?:[ \-]?\d){11,18})(?![\w\-]|\.\d)")
_SSN = re.compile(r"(?<![\w\-.])(\d{3})([\- ])(\d{2})\2(\d{4})(?![\w\-]|\.\d)")
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2})(\d{2})(?=[ ]?[A-Z0-9])")

_SECRET_PATTERNS = [
    re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![A-Za-z0-9])"),
    re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    re.compile(r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{82}(?![A-Za-z0-9_])"),
    re.compile(r"(?<![A-Za-z0-9_\-])glpat-[A-Za-z0-9_\-]{20}(?![A-Za-z0-9_\-])"),
    re.compile(r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"https://hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+"),
    re.compile(r"(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}(?![A-Za-z0-9])"),
    re.compile(r"(?<![A-Za-z0-9_\-])AIza[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_\-])"),
    re.compile(r"(?<![A-Za-z0-9_\-.])eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}"),
]
_URL_CREDENTIALS = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://([^\s:/@?#]+:[^\s/@?#]+)@[A-Za-z0-9\[]")
_SECRET_PRECHECK = re.compile(
    r"PRIVATE KEY|AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|glpat-|xox[abposr]-|hooks\.slack|"
    r"sk_live|sk_test|rk_live|rk_test|AIza|eyJ|://[^\s/@]+@|"
    r"(?i:pass|pwd|secret|token|api.?key|access.?key|auth|credential|private.?key)")
_ASSIGNMENT = re.compile(
    r"(?i)(?<![A-Za-z0-9])([A-Za-z0-9_.\-]*(?:password|passwd|passphrase|pwd|pass|secret|token|"
    r"api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|client[_\-]?secret|auth[_\-]?key|"
    r"credentials?)[A-Za-z0-9_.\-]*)[\"']?\s*(?::=|=>|=|:)\s*"
    r"(?:\"([^\"\n]{1,256})\"|'([^'\n]{1,256})'|([^\s\"',;)}\]]{1,256}))")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:\$|%|\{|<|\[|\(|os\.|process\.env|env\(|getenv|environ|config\.|settings\.|self\.|"
    r"none$|null$|nil$|true$|false$|undefined$|\*+$|x+$|\.\.\.$|your[_\- ]|<|example|"
    r"redacted|placeholder|required$|optional$|string$|str$|int$|secret$|password$|token$)")
_PROSE_VALUE = re.compile(r"^[a-z]+$")


def _add(spans: List[Span], start: int, end: int, kind: str) -> None:
    if end > start:
        spans.append(Span(start, end, kind))


class PiiScrubber:
    """The detector and scrubber; build once (patterns, phone metadata), call per text."""

    def __init__(self, config: PiiConfig = PiiConfig()):
        self.config = config
        self._kinds = frozenset(config.kinds)
        self._regions = tuple(config.phone_regions)

    # ----------------------------------------------------------- detectors
    def _emails(self, text: str, spans: List[Span]) -> None:
        for m in _EMAIL.finditer(text):
            end = m.end()
            if end < len(text) and text[end] == ":" and end + 1 < len(text) and not text[end + 1].isspace():
                continue  # git@github.com:org/repo.git: an ssh remote, not an address
            _add(spans, m.start(1), end, "EMAIL")

    def _phones(self, text: str, spans: List[Span]) -> None:
        import phonenumbers
        from phonenumbers import Leniency, PhoneNumberMatcher

        for m in _PHONE_CANDIDATE.finditer(text):
            raw = m.group(0)
            digits = sum(ch.isdigit() for ch in raw)
            if digits < 7 or digits > 17:
                continue
            start = m.start()
            core = m.group(1)
            if core.isdigit() or (core.startswith("+") and core[1:].isdigit()):
                window = text[max(0, start - 40):start]
                if not _PHONE_WORDS.search(window):
                    continue  # a bare run of digits is an id until something says phone
            regions = ("ZZ",) if raw.lstrip("(").startswith("+") else self._regions
            for region in regions:
                found = False
                for match in PhoneNumberMatcher(raw, region if region != "ZZ" else None,
                                                leniency=Leniency.VALID):
                    if phonenumbers.is_valid_number(match.number):
                        _add(spans, start + match.start, start + match.end, "PHONE")
                        found = True
                if found:
                    break

    def _ips(self, text: str, spans: List[Span]) -> None:
        if "." in text:
            for m in _IPV4.finditer(text):
                value = m.group(1)
                if any(len(octet) > 1 and octet[0] == "0" for octet in value.split(".")):
                    continue
                try:
                    ip = ipaddress.IPv4Address(value)
                except ValueError:
                    continue
                if not ip.is_global or ip.is_multicast:
                    continue
                before = text[max(0, m.start() - 24):m.start()]
                if _VERSION_WORDS.search(before):
                    continue
                _add(spans, m.start(1), m.end(1), "IP_ADDRESS")
        if text.count(":") >= 2:
            for m in _IPV6.finditer(text):
                value = m.group(1)
                if value.count(":") < 2 or not any(c.isalpha() for c in value) and "::" not in value:
                    continue  # 12:30:45 is a time
                try:
                    ip = ipaddress.IPv6Address(value)
                except ValueError:
                    continue
                if ip.is_global and not ip.is_multicast and ip.ipv4_mapped is None:
                    _add(spans, m.start(1), m.end(1), "IP_ADDRESS")

    def _cards(self, text: str, spans: List[Span]) -> None:
        for m in _CARD.finditer(text):
            raw = m.group(1)
            seps = {ch for ch in raw if not ch.isdigit()}
            if len(seps) > 1:
                continue
            digits = raw.replace(" ", "").replace("-", "")
            if not 13 <= len(digits) <= 19 or not _card_network(digits) or not luhn_valid(digits):
                continue
            if seps:  # groups of 4, or Amex/Diners 4-6-5 / 4-6-4
                groups = [len(g) for g in re.split(r"[ \-]", raw)]
                if not (all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4
                        or groups in ([4, 6, 5], [4, 6, 4])):
                    continue
            _add(spans, m.start(1), m.end(1), "CREDIT_CARD")

    def _ssns(self, text: str, spans: List[Span]) -> None:
        for m in _SSN.finditer(text):
            if ssn_valid(m.group(1), m.group(3), m.group(4)):
                _add(spans, m.start(), m.end(), "US_SSN")

    def _ibans(self, text: str, spans: List[Span]) -> None:
        for m in _IBAN_START.finditer(text):
            length = IBAN_LENGTHS.get(m.group(1))
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
        if not _SECRET_PRECHECK.search(text):
            return
        for pattern in _SECRET_PATTERNS:
            for m in pattern.finditer(text):
                _add(spans, m.start(), m.end(), "SECRET")
        if "://" in text:
            for m in _URL_CREDENTIALS.finditer(text):
                _add(spans, m.start(1), m.end(1), "SECRET")
        for m in _ASSIGNMENT.finditer(text):
            quoted = m.group(2) is not None or m.group(3) is not None
            group = 2 if m.group(2) is not None else 3 if m.group(3) is not None else 4
            value = m.group(group)
            if not value or _PLACEHOLDER.search(value) or len(value) < 4:
                continue
            if not quoted:
                key_end = m.end(1)
                operator = text[key_end:m.start(group)]
                env_style = "=" in operator and " " not in operator
                if not env_style and (_PROSE_VALUE.match(value) or len(value) < 6):
                    continue  # "password: reset" in prose
            _add(spans, m.start(group), m.end(group), "SECRET")

    # --------------------------------------------------------------- public
    def find(self, text: str) -> List[Span]:
        spans: List[Span] = []
        kinds = self._kinds
        if "SECRET" in kinds:
            self._secrets(text, spans)
        if "EMAIL" in kinds and "@" in text:
            self._emails(text, spans)
        has_digits = _DIGIT_PAIR.search(text) is not None
        if has_digits:
            if "IBAN" in kinds and _IBAN_PRECHECK.search(text):
                self._ibans(text, spans)
            long_run = _DIGIT_RUN.search(text) is not None
            if long_run:
                if "CREDIT_CARD" in kinds:
                    self._cards(text, spans)
                if "US_SSN" in kinds:
                    self._ssns(text, spans)
                if "PHONE" in kinds:
                    self._phones(text, spans)
            if "IP_ADDRESS" in kinds:
                self._ips(text, spans)
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
_DIGIT_RUN = re.compile(r"\d[\d \-().]{5,}\d")
_IBAN_PRECHECK = re.compile(r"[A-Z]{2}\d{2}")


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
# Beam

PII = "pii"  # counts kind: findings per PII kind (stats.json "pii")


def _beam():
    import apache_beam as beam

    from transforms import common
    from transforms.common import FILTERED, INFO

    class _PiiDoFn(common.CountingDoFn):
        def __init__(self, config: PiiConfig, drop_above: int):
            super().__init__()
            self._config = config
            self._drop_above = drop_above

        def setup(self):
            self._scrubber = PiiScrubber(self._config)

        def process(self, record: dict):
            text, spans = self._scrubber.scrub(record["text"], doc_key=record["id"])
            if not spans:
                yield record
                return
            for span in spans:
                self.count(PII, span.kind)
            self.count(INFO, "pii.documents_with_findings")
            if self._drop_above and len(spans) > self._drop_above:
                self.count(FILTERED, "pii_too_many")
                return
            out = dict(record)
            out["text"] = text
            yield out

    class ScrubPii(beam.PTransform):
        """Records -> records with PII replaced (or dropped above ``drop_above`` findings)."""

        def __init__(self, config: PiiConfig = PiiConfig(), drop_above: int = 0):
            super().__init__()
            self._config = config
            self._drop_above = drop_above

        def expand(self, records):
            return records | "FindAndScrub" >> beam.ParDo(
                _PiiDoFn(self._config, self._drop_above)).with_outputs(common.COUNTS, main="records")

    return ScrubPii


def __getattr__(name):  # ScrubPii is built lazily: the pure core needs no Beam
    if name == "ScrubPii":
        return _beam()
    raise AttributeError(name)
