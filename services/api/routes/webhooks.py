"""Webhook subscribers of a project and their delivery log (admins only: the secret signs deliveries)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from backlot.access import webhooks
from backlot.db.access import DeliveryState
from backlot.services.api.auth import Admin
from backlot.services.api.errors import ERROR_RESPONSES
from backlot.services.api.paging import Limit, Offset, page_of
from backlot.services.api.schemas import DeliveryOut, Page, SubscriberCreated, SubscriberOut, WebhookIn

router = APIRouter(prefix="/api/projects/{project}/webhooks", responses=ERROR_RESPONSES, tags=["webhooks"])
SubscriberId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("", response_model=Page[SubscriberOut])
def list_subscribers(scope: Admin, limit: Limit = 100, offset: Offset = 0) -> Page[SubscriberOut]:
    subs = webhooks.list_subscribers(scope.session, scope.project)
    return page_of([SubscriberOut(**s.to_dict()) for s in subs], limit, offset)


@router.post("", response_model=SubscriberCreated, status_code=201)
def add_subscriber(scope: Admin, body: WebhookIn) -> SubscriberCreated:
    """Deliver the project's future events (of `event_kinds`, or all) to `url`, signed with the returned secret."""
    sub, secret = webhooks.subscribe(scope.session, scope.project, body.url, body.event_kinds, actor=scope.actor)
    return SubscriberCreated(**sub.to_dict(), secret=secret)


@router.get("/{subscriber_id}", response_model=SubscriberOut)
def get_subscriber(scope: Admin, subscriber_id: SubscriberId) -> SubscriberOut:
    return SubscriberOut(**webhooks.get_subscriber(scope.session, scope.project, subscriber_id).to_dict())


@router.delete("/{subscriber_id}", response_model=SubscriberOut)
def remove_subscriber(scope: Admin, subscriber_id: SubscriberId) -> SubscriberOut:
    """Stop deliveries: the subscriber is deactivated, its pending deliveries fail, its log stays."""
    return SubscriberOut(**webhooks.unsubscribe(scope.session, scope.project, subscriber_id).to_dict())


@router.get("/{subscriber_id}/deliveries", response_model=Page[DeliveryOut])
def list_deliveries(scope: Admin, subscriber_id: SubscriberId, state: DeliveryState | None = None,
                    limit: Limit = 100, offset: Offset = 0) -> Page[DeliveryOut]:
    """The delivery log, newest first: state, attempts, and each attempt's status or error."""
    webhooks.get_subscriber(scope.session, scope.project, subscriber_id)
    records, total = webhooks.list_deliveries(scope.session, scope.project, subscriber_id=subscriber_id,
                                              state=state.value if state else None, limit=limit, offset=offset)
    return Page[DeliveryOut](items=[DeliveryOut(**d.to_dict()) for d in records], total=total, limit=limit,
                             offset=offset)
