"""``{% load console_menu %}{% current_section request menu as current %}``: the menu item a
page belongs to, so the sidebar highlights the section on detail pages too (a twin page is
part of Entity sync status, a connection's page part of Connections)."""

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()

#: Pages that belong to a section whose URL is not their prefix.
ALIASES = {
    "/twins/": "sync:entity-status",
    "/exalate/": "sync:entity-status",
}


@register.simple_tag
def current_section(request, menu) -> str:
    """The URL of the menu item ``request.path`` belongs to ('' when none): the longest
    menu URL that prefixes the path, or an alias."""
    path = getattr(request, "path", "") or ""
    urls = []
    for url_name, _label in menu:
        try:
            urls.append(reverse(url_name))
        except NoReverseMatch:
            continue
    for prefix, url_name in ALIASES.items():
        if path.startswith(prefix):
            try:
                return reverse(url_name)
            except NoReverseMatch:
                return ""
    best = ""
    for url in urls:
        if url != "/" and path.startswith(url) and len(url) > len(best):
            best = url
    return best
