"""REST API of livehunt (included under /api/v1/)."""

from django.urls import path

from livehunt import apis

urlpatterns = [
    path("livehunt/rules/", apis.WatchRuleListApi.as_view(), name="api-watchrule-list"),
    path(
        "livehunt/rules/<id:rule_id>/",
        apis.WatchRuleDetailApi.as_view(),
        name="api-watchrule-detail",
    ),
    path(
        "livehunt/rules/<id:rule_id>/hits/",
        apis.WatchRuleHitsApi.as_view(),
        name="api-watchrule-hits",
    ),
]
