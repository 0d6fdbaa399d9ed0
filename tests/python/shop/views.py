"""Views of the test project. ``CALLS`` counts what reached a view (a blocked request never does)."""

import json
import uuid

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from aiwaf.decorators import aiwaf_exempt, aiwaf_exempt_view

CALLS = {"api": 0, "upload": 0}
KNOWN = {uuid.UUID("6f1c2a52-0f5e-4b8e-9a0e-3a3f2f7d9a10")}


def home(request):
    return HttpResponse("<!doctype html><p>home</p>", content_type="text/html")


@csrf_exempt
def contact(request):
    if request.method == "POST":
        return HttpResponse("thanks", content_type="text/html")
    return render(request, "shop/contact.html")


@csrf_exempt
def api_items(request):
    CALLS["api"] += 1
    if request.method == "POST":
        data = json.loads(request.body or b"{}")
        return JsonResponse({"ok": True, "got": data})
    return JsonResponse({"items": []})


@csrf_exempt
def upload(request):
    CALLS["upload"] += 1
    f = request.FILES.get("file")
    return JsonResponse({"name": f.name if f else None, "size": f.size if f else 0, "note": request.POST.get("note")})


def item(request, uid):
    if uid in KNOWN:
        return JsonResponse({"id": str(uid)})
    return JsonResponse({"error": "not found"}, status=404)


def traced(request):
    r = HttpResponse("traced", content_type="text/plain")
    r["X-Aiwaf-Request-Id"] = "set-by-the-view"
    return r


def health(request):
    return HttpResponse("ok")


def slow(request):
    import time

    time.sleep(0.4)
    return HttpResponse("slow")


@aiwaf_exempt
def open_fbv(request):
    return HttpResponse("open")


@aiwaf_exempt
class OpenView(View):
    def get(self, request):
        return HttpResponse("open cbv")


@aiwaf_exempt_view
class SeedOpenView(View):
    def get(self, request):
        return HttpResponse("open seed cbv")
