"""Template tags of the sync engine: ``{% load sync_tags %}{% basic_rules %}`` renders the
read-only Basic-mode rules table (for the connection's page)."""

from django import template

from ..selectors import basic_rules as basic_rules_rows

register = template.Library()


@register.inclusion_tag("sync/_basic_rules.html")
def basic_rules() -> dict:
    """The Basic rules as a read-only table: summary, description, comments, attachments, type."""
    return {"rules": basic_rules_rows()}
