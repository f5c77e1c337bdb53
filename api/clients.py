"""OAuth client credentials (`clientId`/`clientSecret`), as Enmeshed's identity creation and
token endpoint require them."""

from __future__ import annotations

import hmac

from api.errors import ApiError
from backbone.settings import BackboneSettings

INVALID_CLIENT = "invalid_client"


def check_client(settings: BackboneSettings, client_id: str, client_secret: str) -> None:
    expected = settings.clients.get(client_id)
    # compare_digest even for an unknown id, so the answer time says nothing about ids.
    ok = hmac.compare_digest((expected or "\0").encode(), client_secret.encode())
    if expected is None or not ok:
        raise ApiError(401, INVALID_CLIENT, "unknown client or wrong client secret")
