"""REST API of signature files: import (YARA, ClamAV, Quark JSON, CSV; optionally submitted
together for ONE gate hunt) and export (YARA, CSV, STIX 2.1) of the filtered signatures."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.exporters import to_csv, to_stix, to_yara
from portal.exceptions import ApplicationError
from portal.permissions import require_perms
from threats import selectors, services
from threats.apis import (
    ADD,
    ERROR,
    ERRORS,
    IMPORT,
    VIEW,
    request_user,
)

SUMMARY = inline_serializer(
    "ImportSummary",
    {
        "files": serializers.IntegerField(),
        "imported": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "invalid": serializers.IntegerField(),
        "invalid_reasons": serializers.DictField(child=serializers.IntegerField()),
        "duplicate_links": serializers.ListField(child=serializers.DictField()),
        "failed_files": serializers.ListField(child=serializers.DictField()),
        "submitted": serializers.IntegerField(
            required=False, help_text="with submit: drafts submitted for review"
        ),
        "submit_failed": serializers.ListField(
            child=serializers.DictField(),
            required=False,
            help_text="with submit: {id, message} of drafts that could not be submitted",
        ),
    },
)


class SignatureImportApi(APIView):
    permission_classes = [require_perms(ADD, IMPORT)]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="signatures_import",
        request={
            "multipart/form-data": inline_serializer(
                "ImportUpload",
                {
                    "files": serializers.ListField(child=serializers.FileField()),
                    "submit": serializers.BooleanField(
                        required=False,
                        default=False,
                        help_text="submit the imported drafts for review: ONE gate hunt over "
                        "all of them",
                    ),
                },
            )
        },
        responses={200: SUMMARY, **ERRORS, 413: ERROR},
        summary="Import YARA, ClamAV, Quark JSON or CSV files (everything lands as draft)",
        examples=[
            OpenApiExample(
                "Summary",
                value={
                    "files": 2,
                    "imported": 31,
                    "duplicates": 1,
                    "invalid": 2,
                    "invalid_reasons": {
                        "needs the 'androguard' module, which yara-x does not have": 2
                    },
                    "duplicate_links": [
                        {"source": "a.hdb:3", "existing": {"id": 7, "url": "/signatures/7/"}}
                    ],
                    "failed_files": [],
                },
                response_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        files = [(f.name or "upload", f) for f in request.FILES.getlist("files")]
        flag = serializers.BooleanField(required=False, default=False)
        submit = flag.run_validation(request.data.get("submit", False))
        summary = services.signatures_import_uploads(actor=request_user(request), files=files)
        data = summary.as_dict()
        if submit:
            submitted = services.signatures_submit_imported(
                actor=request_user(request), summary=summary
            )
            data["submitted"] = len(submitted.succeeded)
            data["submit_failed"] = submitted.failed
        return Response(data)


class SignatureExportApi(APIView):
    permission_classes = [require_perms(VIEW)]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # ``format`` is this endpoint's own parameter, not DRF's renderer override
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="signatures_export",
        parameters=[
            OpenApiParameter(
                "format", OpenApiTypes.STR, enum=["yara", "csv", "stix"], default="yara"
            ),
            *[
                OpenApiParameter(name, OpenApiTypes.STR)
                for name in ("kind", "status", "family", "severity", "author", "tag", "q")
            ],
        ],
        responses={(200, "text/plain"): OpenApiTypes.STR, **ERRORS},
        summary="Export the filtered signatures (current revisions) as YARA, CSV or STIX 2.1",
    )
    def get(self, request: Request) -> HttpResponse:
        fmt = request.query_params.get("format", "yara")
        if fmt not in ("yara", "csv", "stix"):
            raise ApplicationError("format must be yara, csv or stix.")
        filters = {k: v for k, v in request.query_params.items() if k != "format"}
        fs = selectors.signature_list(filters=filters)
        if not fs.is_valid():
            fields = {name: list(errors) for name, errors in fs.errors.items()}
            first = next(iter(fields.items()))
            raise ApplicationError(f"{first[0]}: {first[1][0]}", {"fields": fields})
        records = selectors.signature_export_records(filters=filters)
        if fmt == "yara":
            text, ctype, ext = to_yara(records), "text/plain; charset=utf-8", "yar"
        elif fmt == "csv":
            text, ctype, ext = to_csv(records), "text/csv; charset=utf-8", "csv"
        else:
            text = json.dumps(to_stix(records), indent=2)
            ctype, ext = "application/json", "json"
        response = HttpResponse(text, content_type=ctype)
        response["Content-Disposition"] = f'attachment; filename="signatures.{ext}"'
        return response
