"""Django's own messages that its Simplified Chinese catalogue lacks (Django 5.2).

Django shows these in English to a Chinese shopper or staff member: the
password validator's "too short" (5.2 changed its msgid, and the zh_Hans
catalogue still has the old one) and a few admin labels. Marking them here
puts them in our catalogue (`make messages`), whose translations Django
finds first (LOCALE_PATHS). Nothing imports this module; it only has to be
seen by makemessages, and tests/test_i18n.py checks the shop shows them in
Chinese.
"""
from django.utils.translation import gettext_lazy, ngettext_lazy

PASSWORD_TOO_SHORT = ngettext_lazy(
    "This password is too short. It must contain at least %d character.",
    "This password is too short. It must contain at least %d characters.",
    "min_length",
)
INVALID_CHOICE = gettext_lazy("%(model)s instance with %(field)s %(value)r is not a valid choice.")
ADMIN_LABELS = (
    gettext_lazy("Model name"),
    gettext_lazy("Add link"),
    gettext_lazy("Change or view list link"),
    gettext_lazy("After you’ve created a user, you’ll be able to edit more user options."),
    gettext_lazy("Error:"),
    gettext_lazy("Forgotten your login credentials?"),
    gettext_lazy("In case you’ve forgotten, you are:"),
)
