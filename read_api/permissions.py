"""Who may read which field. A refusal carries the REST API's code in ``extensions``."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from read_api.context import Info
from read_api.errors import account_forbidden, role_forbidden


class SignedIn(BasePermission):
    """A valid, unexpired, unrevoked bearer token (the REST check)."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.require_viewer()
        return True


class Audits(BasePermission):
    """Auditors and admins: the event history and past states."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        if not info.context.require_viewer().audits:
            raise role_forbidden("only auditor or admin may read the event history")
        return True


class ReadsAccount(BasePermission):
    """The ``account_id`` argument is the caller's own account (auditors, admins: any)."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = info.context.require_viewer()
        account_id = str(kwargs["account_id"])
        if not viewer.may_read(account_id):
            raise account_forbidden(account_id)
        return True


class SeesMaker(BasePermission):
    """A trade's maker side (order, account, fee) is private to that account."""

    message = "the maker side of a trade is private"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = info.context.viewer
        return viewer is not None and viewer.may_read(source.maker_account_id)


class SeesTaker(BasePermission):
    message = "the taker side of a trade is private"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = info.context.viewer
        return viewer is not None and viewer.may_read(source.taker_account_id)
