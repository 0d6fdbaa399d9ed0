"""``aiwaf_exempt``: a view no aiwaf check applies to.

Works on function views, on class-based views (decorate the class, or its ``as_view()``
result) and is honoured by every detector — the seed's decorator was read only after most of
its middleware had run.
"""

from __future__ import annotations

from django.utils.decorators import method_decorator

_count = 0


def aiwaf_exempt(view):
    """Marks a view (function or class) as exempt from every aiwaf check."""
    global _count
    view.aiwaf_exempt = True
    _count += 1
    return view


def any_exempt() -> bool:
    """Whether any view was decorated (otherwise no URL resolving is needed per request)."""
    return _count > 0


def is_exempt(func) -> bool:
    """Whether a resolved view function is exempt."""
    if getattr(func, "aiwaf_exempt", False):
        return True
    cls = getattr(func, "view_class", None) or getattr(func, "cls", None)
    if cls is not None and (getattr(cls, "aiwaf_exempt", False) or getattr(getattr(cls, "dispatch", None), "aiwaf_exempt", False)):
        return True
    wrapped = getattr(func, "__wrapped__", None)
    return wrapped is not None and wrapped is not func and is_exempt(wrapped)


#: The seed's name for class-based views: ``@aiwaf_exempt_view`` on the class.
aiwaf_exempt_view = method_decorator(aiwaf_exempt, name="dispatch")
