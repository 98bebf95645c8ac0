from datetime import date

from django.urls import path, register_converter

from reconciliation import views


class DayConverter:
    regex = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"

    def to_python(self, value: str) -> date:
        return date.fromisoformat(value)

    def to_url(self, value: date | str) -> str:
        return value.isoformat() if isinstance(value, date) else value


register_converter(DayConverter, "day")

app_name = "reconciliation"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("discrepancies/", views.discrepancies, name="discrepancies"),
    path("discrepancies.csv", views.discrepancies_csv, name="discrepancies-csv"),
    path("discrepancies/<int:pk>/", views.discrepancy, name="discrepancy"),
    path("discrepancies/<int:pk>/resolve/", views.discrepancy_resolve_view, name="resolve"),
    path("discrepancies/<int:pk>/accept/", views.discrepancy_accept_view, name="accept"),
    path("<slug:gateway>/<day:day>/", views.day_view, name="day"),
    path("<slug:gateway>/<day:day>/sign-off/", views.sign_off_view, name="sign-off"),
    path("<slug:gateway>/<day:day>/lines.csv", views.lines_csv, name="lines-csv"),
]
