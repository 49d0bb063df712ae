"""Import (command and API) over the whole corpus, one transaction per file, and export
round trips."""

import io
import json
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from engine.importers import parse_bytes
from engine.kinds import get_kind
from threats import services, services_import
from threats.models import Signature, SignatureRevision, Status
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

CORPUS_SUMMARY = {
    "files": 845,
    "imported": 2495,
    "duplicates": 35,
    "invalid": 266,
}
CORPUS_REASONS = {
    "PE-specific target type 1 has no Android equivalent": 168,
    "Mach-O-specific target type 9 has no Android equivalent": 11,
    "ELF-specific target type 6 has no Android equivalent": 9,
    # Koodous rules (engine/androguard.py): what only Koodous' sandbox or code analysis had,
    # and permission() given a string, which Koodous' module refuses too
    "needs the 'cuckoo' module: a sandbox report the engine does not produce": 8,
    "needs androguard.functionality, the results of Koodous' code analysis, which the engine "
    "does not produce": 8,
    "androguard.permission takes a regular expression": 7,
    "PCRE subsignatures are not translated": 7,
    "unknown field or method `map_item`: this field or method doesn't exist [E008]": 7,
    "needs the 'droidbox' module, which yara-x does not have": 4,
    "unknown field or method `field_ids_size`: this field or method doesn't exist [E008]": 4,
    "ClamAV fuzzy image hashes cannot be translated": 3,
    "container constraint CL_TYPE_RTF cannot be translated": 3,
    "needs the 'file' module, which yara-x does not have": 3,
    "'This ClamAV version has reached End of L' is not a hex signature": 2,
    "container constraint CL_TYPE_OOXML_XL cannot be translated": 2,
    "counts apply only to a subsignature or an | group of them": 2,
    "unknown field or method `data_offset`: this field or method doesn't exist [E008]": 2,
    "unknown field or method `string_ids_size`: this field or method doesn't exist [E008]": 2,
    "'6576656e742e6' is not a hex signature": 1,
    "ASCII text-specific target type 7 has no Android equivalent": 1,
    "ClamAV incremental updates (.cdiff) are not imported; apply them with sigtool and import "
    "the resulting .cvd": 1,
    "a signature CSV needs a header with 'kind' and 'body'": 1,
    "container constraint CL_TYPE_HTML cannot be translated": 1,
    "container constraint CL_TYPE_MAIL cannot be translated": 1,
    "mixing & and | without parentheses is ambiguous": 1,
    "no YARA rule found": 1,
    "unknown field or method `class_defs_size`: this field or method doesn't exist [E008]": 1,
    "unknown field or method `link_offset`: this field or method doesn't exist [E008]": 1,
    "unknown field or method `map_offset`: this field or method doesn't exist [E008]": 1,
    "unknown field or method `method_ids_size`: this field or method doesn't exist [E008]": 1,
    "unknown pattern `$a`: this pattern is not declared in the `strings` section [E025]": 1,
    "unsupported file type": 1,
}


def run_command(*args: str) -> dict:
    out = io.StringIO()
    call_command("import_signatures", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_every_corpus_file_through_the_command(corpus, researcher):
    # when the whole corpus is imported
    summary = run_command(
        str(corpus / "yara"), str(corpus / "clamav"), str(corpus / "quark"), "--author", "rita"
    )
    # then every outcome is counted exactly and nothing escaped
    assert {k: summary[k] for k in CORPUS_SUMMARY} == CORPUS_SUMMARY
    assert summary["invalid_reasons"] == CORPUS_REASONS
    assert len(summary["failed_files"]) == 4  # unsupported, no rule, .cdiff, a non-rule CSV
    # everything landed as draft or invalid, by the given author
    assert Counter(Signature.objects.values_list("kind", "status")) == {
        ("yara", "draft"): 2239,
        ("yara", "invalid"): 262,
        ("behavior", "draft"): 228,
        ("hash", "draft"): 28,
    }
    assert set(Signature.objects.values_list("author__username", flat=True)) == {"rita"}
    # a Koodous rule runs, its body the text as written
    koodous = Signature.objects.get(description__contains="dvmap (2955).yara:Dvmap")
    assert koodous.status == Status.DRAFT
    assert (
        koodous.description
        == "Dvmap (imported from koodous_social_rulesets/dvmap (2955).yara:Dvmap)"
    )
    assert koodous.current_revision is not None
    assert koodous.current_revision.body.startswith('import "androguard"\n\nrule Dvmap\n{')
    assert 'androguard.certificate.sha1("D75A495C' in koodous.current_revision.body
    # an invalid one keeps its reason and its own rule text, named relative to the import
    invalid = Signature.objects.filter(status_reason__contains="androguard.functionality")
    assert invalid.count() == 8
    for sig in invalid:
        assert sig.current_revision is not None
        assert isinstance(sig.current_revision.body, str)
        assert "androguard.functionality" in sig.current_revision.body
        assert "(imported from koodous_social_rulesets/" in sig.description
    # a second import finds only duplicates, each linked to the signature it duplicates
    again = run_command(str(corpus / "clamav"), "--author", "rita")
    assert again["imported"] == 0
    # every stored one: 38 valid + 213 invalid, less the .cdiff file that is not read
    assert again["duplicates"] == 38 + 213 - 1
    link = again["duplicate_links"][0]["existing"]
    assert link["url"] == f"/signatures/{link['id']}/"


def test_command_prints_a_readable_summary(corpus, researcher):
    out = io.StringIO()
    call_command("import_signatures", str(corpus / "quark"), "--author", "rita", stdout=out)
    text = out.getvalue()
    assert text.startswith("239 file(s): 228 imported as draft, 10 duplicate(s), 1 invalid")
    assert "not imported:" in text


def test_command_needs_a_known_author(corpus):
    with pytest.raises(CommandError, match="no user named"):
        call_command("import_signatures", str(corpus / "quark"), "--author", "ghost")


def test_every_corpus_file_through_the_api(corpus, api, researcher):
    # given every corpus file, uploaded 100 at a time
    files = sorted(
        p for d in ("yara", "clamav", "quark") for p in (corpus / d).rglob("*") if p.is_file()
    )
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    client = api(researcher)
    for start in range(0, len(files), 100):
        handles = [p.open("rb") for p in files[start : start + 100]]
        try:
            response = client.post(
                "/api/v1/signatures/import/", {"files": handles}, format="multipart"
            )
        finally:
            for h in handles:
                h.close()
        assert response.status_code == 200, response.content
        data = response.json()
        for key in ("files", "imported", "duplicates", "invalid"):
            totals[key] += data[key]
        reasons.update(data["invalid_reasons"])
    # then nothing escaped and the outcomes are those of the command, except that an upload
    # cannot reach a file named by a YARA ``include`` (uploads never read the server's disk):
    # APKiD's 1,611 rules that include common.yara are kept as invalid with that reason
    assert dict(totals) == {"files": 845, "imported": 903, "duplicates": 35, "invalid": 1858}
    include = {k: v for k, v in reasons.items() if "cannot be resolved in an upload" in k}
    assert sum(include.values()) == 1611
    assert {k: v for k, v in reasons.items() if k not in include} == {
        k: v for k, v in CORPUS_REASONS.items() if "[E008]" not in k
    }


def test_one_bad_file_is_reported_and_nothing_of_it_is_saved(tmp_path, researcher, monkeypatch):
    # given two files, the second of which fails while being saved
    good = tmp_path / "a.hdb"
    good.write_text("".join(f"{i:064x}:100:Andr.Test.A-{i}\n" for i in range(1, 4)))
    bad = tmp_path / "b.hdb"
    bad.write_text("".join(f"{i:064x}:100:Andr.Test.B-{i}\n" for i in range(10, 14)))
    real = SignatureRevision.objects.bulk_create

    def failing(objs, *args, **kwargs):
        objs = list(objs)
        if objs and objs[0].signature.description.endswith("b.hdb:1)"):
            raise OSError("disk full")
        return real(objs, *args, **kwargs)

    monkeypatch.setattr(SignatureRevision.objects, "bulk_create", failing)
    # when both are imported
    summary = services.signatures_import_paths(actor=researcher, paths=[tmp_path])
    # then the first is kept whole, the second not at all, and it is reported
    assert summary.imported == 3
    # (named relative to the folder imported)
    assert summary.failed_files == [{"file": "b.hdb", "reason": "could not be saved (OSError)"}]
    assert Signature.objects.count() == 3
    assert SignatureRevision.objects.count() == 3


def test_one_bad_rule_never_aborts_its_file(researcher):
    text = (
        'rule good_one { strings: $a = "premium" condition: $a }\n'
        "rule bad_one { condition: nonsense_identifier }\n"
        'rule good_two { strings: $b = "otp" condition: $b }\n'
    )
    batch = services.ImportBatch("mixed.yar", parse_bytes("mixed.yar", text.encode()))
    summary = services.signatures_import(actor=researcher, batches=[batch])
    assert (summary.imported, summary.invalid) == (2, 1)
    assert Signature.objects.filter(status=Status.INVALID).count() == 1


def test_huge_upload_is_refused_as_json(api, researcher, monkeypatch):
    # the limit lives where the import service reads it
    monkeypatch.setattr(services_import, "MAX_IMPORT_FILE_BYTES", 1024)
    response = api(researcher).post(
        "/api/v1/signatures/import/",
        {"files": [io.BytesIO(b"x" * 2048)]},
        format="multipart",
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["message"]


def test_import_without_files_is_json_400(api, researcher):
    response = api(researcher).post("/api/v1/signatures/import/", {}, format="multipart")
    assert response.status_code == 400
    assert "files" in response.json()["message"]


def test_binary_garbage_upload_is_reported_not_a_500(api, researcher):
    response = api(researcher).post(
        "/api/v1/signatures/import/",
        {"files": [_named(b"\x00\xff" * 100, "x.yar"), _named(b"{", "y.json")]},
        format="multipart",
    )
    assert response.status_code == 200
    data = response.json()
    assert data["imported"] == 0
    assert len(data["failed_files"]) == 2


def _named(data: bytes, name: str) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name
    return f


OWN_RULES = [
    (
        "yara",
        'rule premium_sms_sender_test {\n  strings:\n    $a = "sendTextMessage"\n'
        '    $b = "premium"\n  condition:\n    all of them\n}\n',
    ),
    (
        "yara",
        'rule otp_reader_test {\n  strings:\n    $a = "SMS_RECEIVED"\n  condition:\n'
        "    $a and for any p in android.permissions :\n"
        '      (p == "android.permission.RECEIVE_SMS")\n}\n',
    ),
    ("hash", {"value": "1f" * 32, "target": "dex"}),
    ("hash", {"value": "2e" * 20, "target": "cert"}),
    ("indicator", "billing-premium.example"),
    ("indicator", "https://pay-verify.example/otp?id=1"),
    ("indicator", "7726"),
    (
        "package_cert",
        {"package": "com.examplebank.mobile", "allowed_certs": ["3c" * 32]},
    ),
    (
        "behavior",
        {
            "permissions": ["android.permission.SEND_SMS"],
            "api": [
                {
                    "class": "Landroid/telephony/SmsManager;",
                    "method": "sendTextMessage",
                    "descriptor": "(Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;"
                    "Landroid/app/PendingIntent;Landroid/app/PendingIntent;)V",
                }
            ],
            "score": 4,
        },
    ),
]


@pytest.mark.parametrize("fmt", ["csv", "yara"])
def test_export_imports_back_to_the_same_signatures(fmt, api, researcher):
    # given signatures of every kind
    family = make_family(name="Joker")
    created = []
    for kind, body in OWN_RULES:
        validated = get_kind(kind).validate(body)
        assert validated.ok, (kind, validated.errors)
        created.append(
            services.signature_create(actor=researcher, kind=kind, body=body, family=family)
        )
    expected = {(s.kind, s.dedup_key) for s in created if fmt == "csv" or s.kind == "yara"}
    # when exported and parsed back
    response = api(researcher).get("/api/v1/signatures/export/", {"format": fmt})
    assert response.status_code == 200
    name = "export.csv" if fmt == "csv" else "export.yar"
    candidates = parse_bytes(name, response.content)
    assert all(c.ok for c in candidates), [c.error for c in candidates if not c.ok]
    # then the same kinds and bodies come back
    assert {(c.kind, get_kind(c.kind).dedup_key(c.body)) for c in candidates} == expected
    # and importing the export again finds every one a duplicate of its original
    upload = _named(response.content, name)
    summary = (
        api(researcher)
        .post("/api/v1/signatures/import/", {"files": [upload]}, format="multipart")
        .json()
    )
    assert (summary["imported"], summary["duplicates"]) == (0, len(expected))
    linked = {link["existing"]["id"] for link in summary["duplicate_links"]}
    assert linked == {s.pk for s in created if (s.kind, s.dedup_key) in expected}


def test_export_honours_the_list_filters(api, researcher):
    family = make_family(name="Joker")
    for kind, body in OWN_RULES:
        services.signature_create(actor=researcher, kind=kind, body=body, family=family)
    response = api(researcher).get("/api/v1/signatures/export/", {"format": "csv", "kind": "hash"})
    rows = response.content.decode().strip().splitlines()
    assert len(rows) == 1 + 2
    assert all(r.startswith("hash,") for r in rows[1:])


def test_walk_skips_hidden_files(tmp_path: Path, researcher):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.hdb").write_text(f"{'a' * 64}:1:X\n")
    (tmp_path / "y.hdb").write_text(f"{'b' * 64}:1:Y\n")
    summary = services.signatures_import_paths(actor=researcher, paths=[tmp_path])
    assert (summary.files, summary.imported) == (1, 1)


def test_an_invalid_import_is_fixed_in_the_editor_and_submitted(api, client, researcher):
    # given a Koodous rule that asks androguard.permission for a string (Koodous refuses it)
    text = (
        'import "androguard"\n\n'
        "rule sms_thief\n{\n\tcondition:\n"
        '\t\tandroguard.permission("android.permission.SEND_SMS") and\n'
        "\t\tandroguard.filter(/SMS_RECEIVED/)\n}\n"
    )
    response = api(researcher).post(
        "/api/v1/signatures/import/",
        {"files": [_named(text.encode(), "k.yara")]},
        format="multipart",
    )
    assert response.json()["invalid"] == 1
    sig = Signature.objects.get()
    # then it is kept invalid, with its reason and its own text
    assert sig.status == Status.INVALID
    assert (
        sig.status_reason == "line 6, column 25: androguard.permission takes a regular expression"
    )
    assert sig.current_revision is not None
    assert sig.current_revision.body == text
    # and the editor opens on that text
    client.force_login(researcher)
    page = client.get(f"/signatures/{sig.pk}/edit/")
    assert page.status_code == 200
    assert "androguard.permission(&quot;android.permission.SEND_SMS&quot;)" in page.content.decode()
    # when the researcher fixes it (a regular expression) and saves and submits it
    fixed = text.replace('permission("android.permission.SEND_SMS")', "permission(/SEND_SMS/)")
    saved = api(researcher).patch(f"/api/v1/signatures/{sig.pk}/", {"body": fixed}, format="json")
    assert saved.status_code == 200, saved.content
    submitted = api(researcher).post(f"/api/v1/signatures/{sig.pk}/submit/")
    assert submitted.status_code == 200, submitted.content
    # then it is a Koodous rule like any other, in review, its text as written
    sig.refresh_from_db()
    assert sig.status == Status.IN_REVIEW
    assert sig.current_revision is not None
    assert sig.current_revision.body == fixed


def test_the_editor_validates_koodous_rules_as_you_type(api, researcher):
    body = 'import "androguard"\nrule r { condition: androguard.url(/evil\\.example/) }'
    ok = api(researcher).post(
        "/api/v1/signatures/validate/", {"kind": "yara", "body": body}, format="json"
    )
    assert ok.status_code == 200
    assert ok.json()["valid"] is True
    assert ok.json()["body"] == body.replace("\n", "\n\n") + "\n"  # the importer's layout
    bad = body.replace("url(/evil\\.example/)", "functionality.ssl.code(/x/)")
    refused = api(researcher).post(
        "/api/v1/signatures/validate/", {"kind": "yara", "body": bad}, format="json"
    )
    assert refused.status_code == 400
    (error,) = refused.json()["errors"]
    assert error["line"] == 2
    assert error["message"].startswith("needs androguard.functionality")
