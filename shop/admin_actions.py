"""Admin actions a user may not run are refused, not just hidden.

Django's admin leaves out of the action menu what `get_actions` (and each
action's `permissions`) deny, but a forged POST naming such an action gets
the change list back ("no action selected"). Admins built on
`ShopModelAdmin` answer it with a 403.
"""
from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied


class ShopModelAdmin(admin.ModelAdmin):
    def changelist_view(self, request: Any, extra_context: Any = None) -> Any:
        name = request.POST.get("action", "") if request.method == "POST" else ""
        if name:
            declared = {getattr(action, "__name__", action) for action in (self.actions or ())}
            if name in declared and name not in self.get_actions(request):
                raise PermissionDenied(f"action {name} not allowed")
        return super().changelist_view(request, extra_context)
