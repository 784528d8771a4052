from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "SignalHub"
admin.site.site_title = "SignalHub"
admin.site.index_title = "Signals, deliveries and tasks"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
]
