"""``{% load aiwaf_tags %}{% honeypot_field %}``: kept for templates written for the seed.

The timing honeypot needs nothing in the form (it times the POST from the GET of its page), so
the tag renders nothing, as the seed's 0.1.9 tag does.
"""

from django import template

register = template.Library()


@register.simple_tag
def honeypot_field():
    return ""
