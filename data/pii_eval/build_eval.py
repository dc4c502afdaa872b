"""Build the labelled PII evaluation set: snippets with gold spans, and hard negatives.

    python data/pii_eval/build_eval.py [--out data/pii_eval/pii_eval.jsonl]

Deterministic (fixed seed). Every value is generated here (never a real
person's data or a real key); gold spans come from where the generator put
each value, never from running a detector. Each line:

    {"id": ..., "text": ..., "spans": [{"start", "end", "kind"}], "note": ...}

Span rules: the span covers exactly the value: for a secret assigned in code
or config, the value without its key or quotes; for credentials in a URL,
``user:password``; for a private key, the whole BEGIN..END block.

Labelling decisions (a detector must follow them to score well):
``git@github.com:org/repo`` remotes, ``x@localhost``, ``pkg@1.2.3`` and
``@handles`` are not emails; addresses at example.com are. Private, loopback,
link-local, documentation and reserved IPs are not PII; version strings and
section numbers shaped like IPs are not. Placeholders and variable references
(``<your password>``, ``${DB_PASSWORD}``, ``os.environ["X"]``) are not
secrets; literal values such as ``hunter2`` or ``changeme`` in an assignment
are. Git SHAs, checksums, UUIDs and public keys are not secrets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import string
import uuid

RNG = random.Random(13613)
HERE = os.path.dirname(os.path.abspath(__file__))


class Snippet:
    """Text built piece by piece; labelled pieces record their spans."""

    def __init__(self, note):
        self.parts, self.spans, self.note, self.length = [], [], note, 0

    def add(self, text, kind=None):
        if kind:
            self.spans.append({"start": self.length, "end": self.length + len(text), "kind": kind})
        self.parts.append(text)
        self.length += len(text)
        return self

    def record(self, i):
        text = "".join(self.parts)
        for s in self.spans:
            assert text[s["start"]:s["end"]], s
        return {"id": f"pii-{i:04d}", "text": text, "spans": self.spans, "note": self.note}


def pick(seq):
    return RNG.choice(seq)


def alnum(n, alphabet=string.ascii_letters + string.digits):
    return "".join(RNG.choice(alphabet) for _ in range(n))


# ----------------------------------------------------------------- generators

FIRST = ["anna", "ben", "carla", "dmitri", "elena", "farid", "grace", "hiro", "ines", "jonas",
         "kofi", "lena", "mateo", "nadia", "omar", "priya", "quinn", "rosa", "sven", "tomas"]
LAST = ["smith", "garcia", "mueller", "rossi", "tanaka", "okafor", "novak", "silva", "berg", "khan"]
DOMAINS = ["example.com", "mail.example.org", "uni-example.edu", "corp.example.co.uk",
           "example.net", "startup.example.io", "dept.example.gov", "example.de", "shop.example.fr",
           "example.dev", "example.technology"]


def email():
    f, l = pick(FIRST), pick(LAST)
    local = pick([f"{f}.{l}", f"{f}{RNG.randint(1, 99)}", f"{f[0]}{l}", f"{f}+news", f"{f}_{l}",
                  f"{f}.{l}{RNG.randint(1, 9)}", f"{f.upper()}.{l.capitalize()}"])
    return f"{local}@{pick(DOMAINS)}"


def luhn_digit(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def card(valid=True):
    prefix, length, groups = pick([
        ("4", 16, [4, 4, 4, 4]), ("51", 16, [4, 4, 4, 4]), ("55", 16, [4, 4, 4, 4]),
        ("2221", 16, [4, 4, 4, 4]), ("34", 15, [4, 6, 5]), ("37", 15, [4, 6, 5]),
        ("6011", 16, [4, 4, 4, 4]), ("3530", 16, [4, 4, 4, 4]), ("36", 14, [4, 6, 4])])
    body = prefix + "".join(RNG.choice(string.digits) for _ in range(length - len(prefix) - 1))
    check = luhn_digit(body)
    if not valid:
        check = str((int(check) + RNG.randint(1, 9)) % 10)
    digits = body + check
    sep = pick([" ", "-", ""])
    if not sep:
        return digits
    out, i = [], 0
    for g in groups:
        out.append(digits[i:i + g])
        i += g
    return sep.join(out)


def ssn(valid=True):
    if valid:
        area = RNG.choice([a for a in range(1, 900) if a != 666])
        group, serial = RNG.randint(1, 99), RNG.randint(1, 9999)
    else:
        kind = RNG.randrange(5)
        area = [0, 666, RNG.randint(900, 999), RNG.randint(1, 665), RNG.randint(1, 665)][kind]
        group = 0 if kind == 3 else RNG.randint(1, 99)
        serial = 0 if kind == 4 else RNG.randint(1, 9999)
    sep = pick(["-", "-", " "])
    return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"


IBAN_FORMATS = {"DE": "18n", "GB": "4a14n", "FR": "10n11c2n", "NL": "4a10n", "ES": "20n",
                "IT": "1a10n12c", "CH": "5n12c", "BE": "12n"}


def iban(valid=True, spaced=None):
    country = pick(sorted(IBAN_FORMATS))
    bban = ""
    fmt = IBAN_FORMATS[country]
    i = 0
    while i < len(fmt):
        j = i
        while fmt[j].isdigit():
            j += 1
        n, t = int(fmt[i:j]), fmt[j]
        chars = {"n": string.digits, "a": string.ascii_uppercase,
                 "c": string.ascii_uppercase + string.digits}[t]
        bban += "".join(RNG.choice(chars) for _ in range(n))
        i = j + 1
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check + RNG.randint(1, 50)) % 97 + 2
    value = f"{country}{check:02d}{bban}"
    if spaced if spaced is not None else RNG.random() < 0.5:
        value = " ".join(value[k:k + 4] for k in range(0, len(value), 4))
    return value


PUBLIC_V4 = ["8.8.8.8", "151.101.1.69", "104.16.132.229", "185.199.108.153", "23.45.67.89",
             "93.184.216.34", "142.250.185.78", "52.95.110.1", "81.2.69.160", "213.180.204.62"]
PUBLIC_V6 = ["2606:4700:4700::1111", "2001:4860:4860::8888", "2a03:2880:f12f:83:face:b00c::25de",
             "2a00:1450:4001:82b::200e", "2620:fe::fe"]


def public_ip():
    if RNG.random() < 0.7:
        return pick(PUBLIC_V4) if RNG.random() < 0.5 else \
            f"{RNG.randint(11, 99)}.{RNG.randint(1, 254)}.{RNG.randint(1, 254)}.{RNG.randint(1, 254)}"
    return pick(PUBLIC_V6)


PHONES = ["+44 20 7946 0958", "+1-202-555-0173", "+49 30 901820", "+33 1 23 45 67 89",
          "+81 3-1234-5678", "+91 98765 43210", "(202) 555-0147", "202-555-0147", "202.555.0183",
          "020 7946 0958", "+1 (415) 555-0132", "+61 2 9876 5432", "+34 912 345 678",
          "(312) 555-0199", "646-555-0110", "+44 7911 123456", "0161 496 0000"]


def secret():
    kind = RNG.randrange(12)
    if kind == 0:
        return "AKIA" + alnum(16, string.ascii_uppercase + string.digits), "AWS access key id"
    if kind == 1:
        return pick(["ghp_", "gho_", "ghs_"]) + alnum(36), "GitHub token"
    if kind == 2:
        return "glpat-" + alnum(20, string.ascii_letters + string.digits + "_-"), "GitLab token"
    if kind == 3:
        return f"xoxb-{RNG.randint(10**10, 10**11)}-{RNG.randint(10**10, 10**11)}-{alnum(24)}", "Slack token"
    if kind == 4:
        return pick(["sk_live_", "rk_live_", "sk_test_"]) + alnum(24), "Stripe key"
    if kind == 5:
        return "AIza" + alnum(35, string.ascii_letters + string.digits + "_-"), "Google API key"
    if kind == 6:
        b64 = string.ascii_letters + string.digits + "-_"
        return f"eyJ{alnum(18, b64)}.eyJ{alnum(40, b64)}.{alnum(43, b64)}", "JWT"
    if kind == 7:
        return (f"https://hooks.slack.com/services/T{alnum(8, string.ascii_uppercase + string.digits)}"
                f"/B{alnum(8, string.ascii_uppercase + string.digits)}/{alnum(24)}"), "Slack webhook"
    if kind == 8:
        label = pick(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
        lines = "\n".join(alnum(64, string.ascii_letters + string.digits + "+/") for _ in range(4))
        return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----", "private key block"
    if kind == 9:
        return "github_pat_" + alnum(82, string.ascii_letters + string.digits + "_"), "GitHub PAT"
    if kind == 10:
        return alnum(40, string.ascii_letters + string.digits + "/+"), "AWS secret (assignment)"
    return pick(["hunter2", "changeme", "Tr0ub4dor&3", "s3cr3t!Pass", "letmein2024", "P@ssw0rd99",
                 alnum(16)]), "password value"


# ----------------------------------------------------------------- snippets


def positives():
    out = []
    for _ in range(90):
        e = email()
        s = Snippet("email")
        t = pick(["Please contact {} for the schedule.", "From: Team <{}>\nSubject: minutes",
                  "Send the forms to {}.", "mailto:{}", "Questions? Write to {}!", "cc: {}; bcc none",
                  "Maintainer: {} (since 2019)"])
        a, b = t.split("{}")
        out.append(s.add(a).add(e, "EMAIL").add(b))
    for _ in range(85):
        p = pick(PHONES)
        t = pick(["Call us at {} between 9 and 5.", "Tel: {}", "Mobile {} (evenings)",
                  "Phone: {} ext. 12", "For bookings ring {}.", "Contact: Jane, {}, Berlin office",
                  "Hotline {} is open daily."])
        a, b = t.split("{}")
        out.append(Snippet("phone").add(a).add(p, "PHONE").add(b))
    for _ in range(75):
        ip = public_ip()
        t = pick(["Failed login from {} at 03:12.", "server_ip = {}", "{} - - [12/Oct/2023:06:25:24] \"GET / HTTP/1.1\" 200",
                  "The client at {} was blocked.", "Allowed host: {}", "Resolved to {} via DNS."])
        a, b = t.split("{}")
        out.append(Snippet("public ip").add(a).add(ip, "IP_ADDRESS").add(b))
    for _ in range(65):
        c = card(True)
        t = pick(["Card number: {} exp 08/27", "Charged to {} yesterday.", "cc={}&cvv=123",
                  "Payment card {} was declined.", "Visa/MC: {}"])
        a, b = t.split("{}")
        out.append(Snippet("credit card").add(a).add(c, "CREDIT_CARD").add(b))
    for _ in range(55):
        v = ssn(True)
        t = pick(["SSN: {}", "Social Security Number {} on file.", "employee,{},active",
                  "Applicant SSN {} verified."])
        a, b = t.split("{}")
        out.append(Snippet("ssn").add(a).add(v, "US_SSN").add(b))
    for _ in range(55):
        v = iban(True)
        t = pick(["Please transfer to IBAN {} by Friday.", "IBAN: {}", "Account {} (BIC DEUTDEFF)",
                  "Bank details: {}, ref. 2023-114"])
        a, b = t.split("{}")
        out.append(Snippet("iban").add(a).add(v, "IBAN").add(b))
    for _ in range(95):
        v, what = secret()
        s = Snippet("secret: " + what)
        if what == "AWS secret (assignment)":
            key_id = "AKIA" + alnum(16, string.ascii_uppercase + string.digits)
            out.append(s.add("[default]\naws_access_key_id = ").add(key_id, "SECRET")
                       .add("\naws_secret_access_key = ").add(v, "SECRET"))
            continue
        if what == "password value":
            form = RNG.randrange(5)
            if form == 0:
                out.append(s.add('db:\n  user: app\n  password: "').add(v, "SECRET").add('"'))
            elif form == 1:
                out.append(s.add("DB_PASS=").add(v, "SECRET").add("\nDB_HOST=db.internal"))
            elif form == 2:
                out.append(s.add('conn = connect(user="app", password="').add(v, "SECRET").add('")'))
            elif form == 3:
                user = pick(FIRST)
                out.append(s.add(f"DATABASE_URL=postgres://").add(f"{user}:{v}", "SECRET")
                           .add("@db.example.com:5432/app"))
            else:
                out.append(s.add('{"api_key": "').add(alnum(32), "SECRET").add('", "region": "eu"}'))
            continue
        t = pick(["token: {}", "export API_TOKEN={}", "Oops, I pasted my key {} in the chat",
                  "headers = {{'Authorization': 'Bearer {}'}}", "{}"])
        t = t.replace("{{", "\x00").replace("}}", "\x01")
        a, b = t.split("{}")
        a, b = a.replace("\x00", "{").replace("\x01", "}"), b.replace("\x00", "{").replace("\x01", "}")
        out.append(s.add(a).add(v, "SECRET").add(b))
    return out


def negatives():
    out = []
    neg = [
        # emails that are not
        "git clone git@github.com:example/project.git", "Use @dataclass and @property here.",
        "npm install left-pad@1.3.0 --save", "ssh deploy@localhost -p 2222", "Follow @beamtrain_dev for news",
        "@media (max-width: 600px) { body { margin: 0 } }",
        # phones that are not
        "Order #100234987 shipped on 2023-10-12.", "Meeting on 12/10/2023 at 14:35.",
        "ZIP code 90210-1234, Beverly Hills.", "ISBN 978-3-16-148410-0 (hardcover)",
        "The price is $1,234,567.89 before tax.", "Coordinates: 40.7128, -74.0060",
        "Timestamp 1697040000 marks the release.", "Invoice INV-2023-004512 is due.",
        "Final score 3-2 after extra time.", "Pages 1234-1250 of volume 12.",
        "Measurements: 12.5, 13.7, 14.2, 15.9 cm", "arXiv:2310.12345 and doi:10.1000/182",
        "Tracking number 1Z999AA10123456784", "Build 20231012.1 passed all 4521 tests.",
        # IPs that are not PII
        "Gateway 192.168.1.1, DNS 10.0.0.53", "Bind to 0.0.0.0 and broadcast 255.255.255.255",
        "Loopback 127.0.0.1 and ::1 only.", "Link-local 169.254.10.20 and fe80::1ff:fe23:4567:890a",
        "Examples use 192.0.2.1, 198.51.100.23 and 203.0.113.7.", "IPv6 docs prefix 2001:db8::1",
        "Upgrade to version 1.2.3.4 now.", "Python 3.11.2.1 is not a real release.",
        "See section 4.2.1.3 of the spec.", "OID 1.3.6.1.4.1.311.21.8", "Invalid 256.1.1.1 and 999.10.10.10",
        "MAC 00:1A:2B:3C:4D:5E on eth0", "Started at 12:30:45, ended 13:02:11.", "Private 172.16.5.4 subnet",
        # cards and numbers
        "Reference 1234 5678 9012 3456 is not a card.", "Bank ref 000123456789012345678",
        "Serial 7392-1844-0012-9981-44", "Order 4000 0000 0000 0001 2 items",
        # SSNs invalid / lookalikes
        "Date 2023-01-15 and part 123-45-67890", "ZIP+4 12345-6789",
        # IBAN lookalikes
        "BIC DEUTDEFF500 and VAT DE123456789", "Product code AB12CDEF3456GHIJ",
        # secrets lookalikes
        "commit 3f786850e387550fdab836ed7e6dc881de23001b", "Merge 9fceb02 into main",
        "sha256sum: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  file.tar.gz",
        "md5 d41d8cd98f00b204e9800998ecf8427e", "request id 123e4567-e89b-12d3-a456-426614174000",
        '"integrity": "sha512-Q0Vb1pIY5kPkfx2mUPp+7UoI1aMj3HO+ytDZ6hdqxOTqzJJvPbWDe6gsUMN5NKsoKZ4o1N9QLYJUz43qHpYLhQ=="',
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host", 'password = "<your password here>"',
        "password: ${DB_PASSWORD}", 'token = os.environ["API_TOKEN"]', "api_key = getenv('KEY')",
        "Forgot your password? Reset your password from the account page.",
        "The token ring network was popular in the 1980s.", "color: #ff00aa; background: #0a0a0a",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
        "https://example.com/path?query=1&page=2", "See /usr/local/lib/python3.11/site-packages",
        "E = mc^2 and pi is 3.14159265", "secret_santa_enabled = true",
    ]
    for t in neg:
        out.append(Snippet("hard negative").add(t))
    # generated negatives: Luhn-invalid cards, invalid SSNs and IBANs, random ids
    for _ in range(40):
        out.append(Snippet("hard negative: Luhn-invalid card").add(f"Number {card(False)} failed the check."))
    for _ in range(40):
        out.append(Snippet("hard negative: invalid SSN").add(f"Test value {ssn(False)} (invalid range)."))
    for _ in range(35):
        out.append(Snippet("hard negative: bad IBAN check").add(f"IBAN {iban(False)} was rejected."))
    for _ in range(30):
        sha = hashlib.sha1(alnum(12).encode()).hexdigest()
        out.append(Snippet("hard negative: SHA").add(f"Fixed in {sha} (see CI run {RNG.randint(1000, 9999)})."))
    for _ in range(30):
        out.append(Snippet("hard negative: UUID").add(f"job_id={uuid.UUID(int=RNG.getrandbits(128))}"))
    for _ in range(30):
        major, minor, patch = RNG.randint(0, 12), RNG.randint(0, 30), RNG.randint(0, 99)
        out.append(Snippet("hard negative: version").add(f"Requires libfoo >= {major}.{minor}.{patch}.{RNG.randint(0, 9)}"))
    for _ in range(30):
        private = pick([f"10.{RNG.randint(0, 255)}.{RNG.randint(0, 255)}.{RNG.randint(1, 254)}",
                        f"192.168.{RNG.randint(0, 255)}.{RNG.randint(1, 254)}",
                        f"172.{RNG.randint(16, 31)}.{RNG.randint(0, 255)}.{RNG.randint(1, 254)}"])
        out.append(Snippet("hard negative: private ip").add(f"Internal host {private} is down."))
    for _ in range(30):
        out.append(Snippet("hard negative: prices and dates").add(
            f"On {RNG.randint(2000, 2030)}-{RNG.randint(1, 12):02d}-{RNG.randint(1, 28):02d} the "
            f"price rose to ${RNG.randint(10, 9999)}.{RNG.randint(0, 99):02d} ({RNG.randint(1, 99)}%)."))
    return out


def mixed():
    out = []
    for _ in range(60):
        s = Snippet("mixed")
        s.add(f"Release {RNG.randint(1, 9)}.{RNG.randint(0, 9)}.{RNG.randint(0, 9)}.{RNG.randint(0, 9)} notes: contact ")
        s.add(email(), "EMAIL").add(" or call ").add(pick(PHONES), "PHONE")
        s.add(f". Commit {hashlib.sha1(alnum(8).encode()).hexdigest()} fixes the crash on 10.0.0.{RNG.randint(2, 250)}.")
        out.append(s)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "pii_eval.jsonl"))
    args = parser.parse_args(argv)
    snippets = positives() + negatives() + mixed()
    RNG.shuffle(snippets)
    with open(args.out, "w", encoding="utf-8") as f:
        for i, s in enumerate(snippets):
            f.write(json.dumps(s.record(i), ensure_ascii=False) + "\n")
    kinds = {}
    for s in snippets:
        for span in s.spans:
            kinds[span["kind"]] = kinds.get(span["kind"], 0) + 1
    print(f"{len(snippets)} snippets, {sum(1 for s in snippets if not s.spans)} without PII; "
          f"spans per kind: {dict(sorted(kinds.items()))}")


if __name__ == "__main__":
    main()
