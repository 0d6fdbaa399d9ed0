from django.contrib import admin
from django.urls import path

from shop import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", views.home),
    path("contact/", views.contact),
    path("api/items/", views.api_items),
    path("items/<uuid:uid>/", views.item),
    path("health/", views.health),
    path("traced/", views.traced),
    path("slow/", views.slow),
    path("open/", views.open_fbv),
    path("open-cbv/", views.OpenView.as_view()),
    path("open-seed-cbv/", views.SeedOpenView.as_view()),
    path("upload/", views.upload),
]
