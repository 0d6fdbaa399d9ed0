from django.http import HttpResponse
from django.urls import path


def page(request, rest=""):
    return HttpResponse("<!doctype html><title>ok</title><p>hello from django</p>\n")


urlpatterns = [
    path("", page),
    path("blog/<path:rest>", page),
    path("static/<path:rest>", page),
    path("api/<path:rest>", page),
    path("en/<path:rest>", page),
    path("contact/", page),
]
