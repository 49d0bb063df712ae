from django.urls import path

from livehunt import views

app_name = "livehunt"

urlpatterns = [
    path("livehunt/", views.rule_list_view, name="rule-list"),
    path("livehunt/<id:rule_id>/", views.rule_detail_view, name="rule-detail"),
]
