"""ClamAV signature databases: hashes as ``hash`` candidates, body signatures as YARA.

- ``.hdb``/``.hsb`` (``hash:size:name[:flevel]``, size may be ``*``) become whole-file hash
  candidates (target ``apk``); the size is dropped (the hash already implies it).
- ``.ndb`` (``name:target:offset:hexsig[:min[:max]]``) and ``.ldb``
  (``name;tdb;expression;subsig0;...``) become YARA rules when they translate: target 0 (any
  file), offsets ``*``, ``n``, ``n,m`` and ``EOF-n``, hex with ``??``/nibble wildcards, ``*``,
  ``{n}``, ``{n-m}``, ``{-n}``, ``{n-}``, ``[n-m]`` and ``(aa|bb)`` alternatives, ``::iwaf``
  modifiers on plain strings, and logical expressions with ``&``, ``|``, parentheses and
  ``=n``, ``>n``, ``<n``, ``=n,m``/``>n,m`` counts. Anything else (PE/ELF/OLE2... targets,
  entry-point and section offsets, PCRE, icon, macro and byte-compare subsignatures, fuzzy
  image hashes, container constraints) is kept as invalid with the reason.
- ``.cvd``/``.cld`` (a 512-byte header, then a tar, gzipped for .cvd) are unpacked in memory
  and their ``.hdb .hsb .ndb .ldb`` members parsed; ``.cdiff`` (incremental updates) is not
  imported.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import PurePosixPath

from engine.importers.base import ImportCandidate, decode_text, finish

TARGET_NAMES = {
    1: "PE",
    2: "OLE2",
    3: "HTML",
    4: "mail",
    5: "graphics",
    6: "ELF",
    7: "ASCII text",
    9: "Mach-O",
    10: "PDF",
    11: "Flash",
    12: "Java class",
}
MAX_MEMBER_BYTES = 20 * 1024 * 1024
_HASH_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = re.compile(r"[0-9a-fA-F]+")


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes "³", which ``int`` then refuses."""
    return re.fullmatch(r"[0-9]{1,18}", text) is not None


class Untranslatable(ValueError):
    pass


def parse_bytes(name: str, data: bytes) -> list[ImportCandidate]:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix == ".cdiff":
        return [
            _failure(
                name,
                "ClamAV incremental updates (.cdiff) are not imported; apply them with sigtool "
                "and import the resulting .cvd",
            )
        ]
    if suffix in (".cvd", ".cld"):
        return _container(name, data, gzipped=suffix == ".cvd")
    try:
        text = decode_text(data)
    except UnicodeDecodeError as exc:
        return [_failure(name, f"cannot read the file as UTF-8 text: {exc}")]
    parse_line = {".hdb": _hash_line, ".hsb": _hash_line, ".ndb": _ndb_line, ".ldb": _ldb_line}
    candidates = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        source = f"{name}:{number}"
        try:
            candidates.append(finish(parse_line[suffix](line, source)))
        except Untranslatable as exc:
            kind = "hash" if suffix in (".hdb", ".hsb") else "yara"
            candidates.append(_failure(source, str(exc), name=_line_name(line, suffix), kind=kind))
    return candidates or [_failure(name, "no signatures in the file")]


def _container(name: str, data: bytes, *, gzipped: bool) -> list[ImportCandidate]:
    if not data.startswith(b"ClamAV-VDB:") or len(data) <= 512:
        return [_failure(name, "not a ClamAV database container (no ClamAV-VDB header)")]
    candidates: list[ImportCandidate] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data[512:]), mode="r:gz" if gzipped else "r:") as tar:
            for member in tar.getmembers():
                suffix = PurePosixPath(member.name).suffix.lower()
                if not member.isfile() or suffix not in (".hdb", ".hsb", ".ndb", ".ldb"):
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    candidates.append(_failure(f"{name}/{member.name}", "member too large"))
                    continue
                extracted = tar.extractfile(member)
                if extracted is None:
                    continue
                member_name = f"{name}/{PurePosixPath(member.name).name}"
                found = parse_bytes(member_name, extracted.read())
                candidates += [c for c in found if c.error != "no signatures in the file"]
    except (tarfile.TarError, OSError, EOFError) as exc:
        return [_failure(name, f"ClamAV database container cannot be unpacked: {exc}")]
    return candidates or [_failure(name, "the ClamAV database container holds no signatures")]


def _line_name(line: str, suffix: str) -> str | None:
    if suffix == ".ldb":
        return line.split(";", 1)[0] or None
    if suffix == ".ndb":
        return line.split(":", 1)[0] or None
    parts = line.split(":")
    return parts[2] if len(parts) > 2 else None


def _hash_line(line: str, source: str) -> ImportCandidate:
    parts = line.split(":")
    if len(parts) < 3:
        raise Untranslatable("a hash signature line is hash:size:name[:flevel]")
    value, size, sig_name = parts[0].strip(), parts[1].strip(), parts[2].strip()
    if size != "*" and not _digits(size):
        # .hsb/.hdb also carry PE section hashes (size:hash:name) in .msb/.mdb; not these
        raise Untranslatable(f"size {size!r} is neither a number nor *")
    algorithm = _HASH_LENGTHS.get(len(value))
    if algorithm is None:
        raise Untranslatable(f"{len(value)}-digit hash is not MD5, SHA-1 or SHA-256")
    return ImportCandidate(
        kind="hash",
        body={"algorithm": algorithm, "value": value, "target": "apk"},
        name=sig_name,
        source=source,
        family_hint=_family(sig_name),
    )


def _family(sig_name: str) -> str | None:
    # Platform.Category.Family-id: the third dotted part names the family
    parts = sig_name.split(".")
    return parts[2].split("-")[0] if len(parts) >= 3 and parts[2] else None


def _check_target(target: str) -> None:
    target = target.strip()
    if target in ("", "0"):
        return
    if not _digits(target):
        raise Untranslatable(f"target type {target!r} is not a number")
    label = TARGET_NAMES.get(int(target))
    if label:
        raise Untranslatable(f"{label}-specific target type {target} has no Android equivalent")
    raise Untranslatable(f"target type {target} has no Android equivalent")


def _ndb_line(line: str, source: str) -> ImportCandidate:
    parts = line.split(":")
    if len(parts) < 4:
        raise Untranslatable("an .ndb line is name:target:offset:hexsig")
    sig_name, target, offset, hexsig = parts[0], parts[1], parts[2], parts[3]
    _check_target(target)
    pattern = _hex_pattern(hexsig)
    condition = _offset_condition("$a", offset)
    body = _yara_rule(sig_name, [f"$a = {pattern}"], condition)
    return ImportCandidate(
        kind="yara", body=body, name=sig_name, source=source, family_hint=_family(sig_name)
    )


def _ldb_line(line: str, source: str) -> ImportCandidate:
    fields = line.split(";")
    if len(fields) < 4:
        raise Untranslatable("an .ldb line is name;target description;expression;subsig;...")
    sig_name, tdb, expression, subsigs = fields[0], fields[1], fields[2], fields[3:]
    extra_conditions = _tdb_conditions(tdb)
    strings: list[str] = []
    offsets: dict[int, str] = {}
    for n, subsig in enumerate(subsigs):
        text, offset = _subsig(subsig)
        strings.append(f"$s{n} = {text}")
        if offset is not None:
            offsets[n] = offset
    condition = _LogicalExpression(expression, len(subsigs), offsets).translate()
    if extra_conditions:
        condition = " and ".join([*extra_conditions, f"({condition})"])
    body = _yara_rule(sig_name, strings, condition)
    return ImportCandidate(
        kind="yara", body=body, name=sig_name, source=source, family_hint=_family(sig_name)
    )


def _tdb_conditions(tdb: str) -> list[str]:
    conditions: list[str] = []
    for item in tdb.split(","):
        key, _, value = item.partition(":")
        key = key.strip()
        if key in ("Engine", ""):
            continue
        if key == "Target":
            _check_target(value)
        elif key == "FileSize":
            low, _, high = value.partition("-")
            if not (_digits(low) and (_digits(high) or high == "")):
                raise Untranslatable(f"FileSize {value!r} is not a range")
            conditions.append(f"filesize >= {int(low)}")
            if high:
                conditions.append(f"filesize <= {int(high)}")
        elif key.startswith("IconGroup"):
            raise Untranslatable("ClamAV icon/macro subsignatures cannot be translated")
        elif key == "Container":
            raise Untranslatable(f"container constraint {value} cannot be translated")
        else:
            raise Untranslatable(f"target description {key} is PE-specific or not translatable")
    return conditions


_SUBSIG_OFFSET = re.compile(r"(\*|[0-9]+(?:,[0-9]+)?|EOF-[0-9]+):(?!:)(.*)")


def _subsig(subsig: str) -> tuple[str, str | None]:
    """A subsignature as a YARA string, and its offset condition (``None`` for anywhere)."""
    text = subsig.strip()
    if "fuzzy_img#" in text:
        raise Untranslatable("ClamAV fuzzy image hashes cannot be translated")
    if text.startswith("$") or re.match(r"^\$?\{[0-9-]+\}", text):
        raise Untranslatable("ClamAV icon/macro subsignatures cannot be translated")
    if "/" in text:
        raise Untranslatable("PCRE subsignatures are not translated")
    if "#" in text:
        raise Untranslatable("byte-compare subsignatures cannot be translated")
    offset: str | None = None
    m = _SUBSIG_OFFSET.fullmatch(text)
    if m:
        offset, text = m.group(1), m.group(2)
        if offset == "*":
            offset = None
    elif re.match(r"^(EP|S[0-9]+|SE|SL|VI)", text):
        raise Untranslatable("entry-point and section offsets are PE-specific")
    hexsig, _, modifiers = text.partition("::")
    if modifiers:
        return _modified_string(hexsig, modifiers), offset
    return _hex_pattern(hexsig), offset


def _modified_string(hexsig: str, modifiers: str) -> str:
    if not _HEX.fullmatch(hexsig) or len(hexsig) % 2:
        raise Untranslatable("case/wide modifiers apply only to plain byte strings")
    mapping = {"i": "nocase", "w": "wide", "a": "ascii", "f": "fullword"}
    unknown = set(modifiers) - set(mapping)
    if unknown:
        raise Untranslatable(f"subsignature modifier(s) {''.join(sorted(unknown))} not translated")
    raw = bytes.fromhex(hexsig)
    escaped = "".join(
        chr(b) if 0x20 <= b < 0x7F and chr(b) not in '"\\' else f"\\x{b:02x}" for b in raw
    )
    words = [mapping[c] for c in "iwaf" if c in modifiers]
    return f'"{escaped}" ' + " ".join(words)


_HEX_TOKEN = re.compile(
    r"(?P<byte>[0-9a-fA-F?]{2})|(?P<star>\*)|(?P<jump>\{-?[0-9]*-?[0-9]*\})"
    r"|(?P<range>\[[0-9]+-[0-9]+\])|(?P<alt>!?\([0-9a-fA-F?|]+\))|(?P<other>.)"
)


def _hex_pattern(hexsig: str) -> str:
    """A ClamAV hex signature as a YARA hex string."""
    sig = hexsig.strip()
    if not sig:
        raise Untranslatable("empty signature")
    out: list[str] = []
    for m in _HEX_TOKEN.finditer(sig):
        group = m.lastgroup
        text = m.group()
        if group == "byte":
            if "?" in text and text not in ("??", "?" + text[1], text[0] + "?"):
                raise Untranslatable(f"wildcard {text!r} not understood")
            out.append(text.upper())
        elif group == "star":
            out.append("[-]")
        elif group == "jump":
            inner = text[1:-1]
            if inner.startswith("-"):
                inner = "0" + inner
            if not inner or inner == "0-":
                inner = "-"
            out.append(f"[{inner}]")
        elif group == "range":
            out.append(text)
        elif group == "alt":
            if text.startswith("!"):
                raise Untranslatable("negated alternatives !(..) cannot be translated")
            options = text[1:-1].split("|")
            if any(len(o) % 2 or not o for o in options):
                raise Untranslatable("alternatives with half bytes cannot be translated")
            out.append(
                "( "
                + " | ".join(
                    " ".join(o[i : i + 2].upper() for i in range(0, len(o), 2)) for o in options
                )
                + " )"
            )
        else:
            if text in "()" or text == "!":
                raise Untranslatable(
                    "word-boundary and line anchors (B) (L) and negations are not translated"
                )
            raise Untranslatable(f"{sig[:40]!r} is not a hex signature")
    if out[0].startswith("[") or out[-1].startswith("["):
        raise Untranslatable("a signature cannot start or end with a jump")
    return "{ " + " ".join(out) + " }"


def _offset_condition(var: str, offset: str) -> str:
    offset = offset.strip()
    if offset == "*":
        return var
    if _digits(offset):
        return f"{var} at {int(offset)}"
    m = re.fullmatch(r"([0-9]+),([0-9]+)", offset)
    if m:
        low, shift = int(m.group(1)), int(m.group(2))
        return f"{var} in ({low}..{low + shift})"
    m = re.fullmatch(r"EOF-([0-9]+)", offset)
    if m:
        return f"{var} at filesize - {int(m.group(1))}"
    if re.match(r"EP|S[0-9]+|SE|SL|VI", offset):
        raise Untranslatable("entry-point, section and version-info offsets are PE-specific")
    raise Untranslatable(f"offset {offset!r} cannot be translated")


def _identifier(sig_name: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", sig_name)
    return ident if ident[:1].isalpha() else f"clamav_{ident}"


def _yara_rule(sig_name: str, strings: list[str], condition: str) -> str:
    escaped = sig_name.replace("\\", "\\\\").replace('"', '\\"')
    lines = [f"rule {_identifier(sig_name)}", "{", "  meta:", f'    clamav_name = "{escaped}"']
    lines += ["  strings:", *(f"    {s}" for s in strings), "  condition:", f"    {condition}", "}"]
    return "\n".join(lines) + "\n"


class _LogicalExpression:
    """ClamAV's subsignature expression as a YARA condition."""

    _TOKEN = re.compile(r"\s*(?:(\d+)|([&|()])|([=<>])(\d+)(?:,(\d+))?)")

    def __init__(self, text: str, count: int, offsets: dict[int, str]) -> None:
        self.text = text.strip()
        self.count = count
        self.offsets = offsets
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(self.text):
            m = self._TOKEN.match(self.text, pos)
            if not m or m.end() == pos:
                raise Untranslatable(f"logical expression {self.text!r} cannot be translated")
            if m.group(1):
                self.tokens.append(("index", m.group(1)))
            elif m.group(2):
                self.tokens.append(("op", m.group(2)))
            else:
                self.tokens.append(("count", f"{m.group(3)}:{m.group(4)}:{m.group(5) or ''}"))
            pos = m.end()
        self.pos = 0
        self.used: set[int] = set()

    def translate(self) -> str:
        result, _ = self._expr()
        if self.pos != len(self.tokens):
            raise Untranslatable(f"logical expression {self.text!r} cannot be translated")
        unused = set(range(self.count)) - self.used
        if unused:
            raise Untranslatable(f"subsignature(s) {sorted(unused)} are not in the expression")
        return result

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _expr(self) -> tuple[str, list[int] | None]:
        """Returns the condition and, for a pure ``|`` group of indexes, those indexes."""
        text, members = self._term()
        parts, ops = [text], set()
        group = list(members) if members is not None else None
        while (tok := self._peek()) in (("op", "&"), ("op", "|")):
            assert tok is not None
            self.pos += 1
            ops.add(tok[1])
            right, right_members = self._term()
            parts.append(right)
            if group is not None and right_members is not None:
                group += right_members
            else:
                group = None
        if len(ops) > 1:
            raise Untranslatable("mixing & and | without parentheses is ambiguous")
        joiner = " and " if ops == {"&"} else " or "
        return joiner.join(parts), (group if ops <= {"|"} else None)

    def _term(self) -> tuple[str, list[int] | None]:
        tok = self._peek()
        if tok is None:
            raise Untranslatable(f"logical expression {self.text!r} ends early")
        self.pos += 1
        if tok[0] == "index":
            index = int(tok[1])
            if index >= self.count:
                raise Untranslatable(f"subsignature {index} does not exist")
            self.used.add(index)
            text = self._var(index)
            members: list[int] | None = [index]
        elif tok == ("op", "("):
            inner, members = self._expr()
            if self._peek() != ("op", ")"):
                raise Untranslatable(f"unbalanced parentheses in {self.text!r}")
            self.pos += 1
            text = f"({inner})"
        else:
            raise Untranslatable(f"logical expression {self.text!r} cannot be translated")
        count = self._peek()
        if count is not None and count[0] == "count":
            self.pos += 1
            text = self._count(members, count[1])
            members = None
        return text, members

    def _var(self, index: int) -> str:
        offset = self.offsets.get(index)
        return _offset_condition(f"$s{index}", offset) if offset else f"$s{index}"

    def _count(self, members: list[int] | None, spec: str) -> str:
        op, number, distinct = spec.split(":")
        if members is None:
            raise Untranslatable("counts apply only to a subsignature or an | group of them")
        if any(m in self.offsets for m in members):
            raise Untranslatable("counts on offset-anchored subsignatures are not translated")
        total = " + ".join(f"#s{m}" for m in members)
        total = f"({total})" if len(members) > 1 else total
        yara_op = {"=": "==", ">": ">", "<": "<"}[op]
        condition = f"{total} {yara_op} {int(number)}"
        if distinct:
            names = ", ".join(f"$s{m}" for m in members)
            condition = f"({condition} and {int(distinct)} of ({names}))"
        return condition


def _failure(
    source: str, reason: str, *, name: str | None = None, kind: str = ""
) -> ImportCandidate:
    return ImportCandidate(kind=kind, body=None, name=name, source=source, error=reason)
