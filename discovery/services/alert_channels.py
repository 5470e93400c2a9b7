"""Sending one notice: a signed JSON POST to a webhook, or an e-mail through Django's mail.

Each failure says whether trying again may help (``SendError.retry``): a server error,
a refused connection or a timeout may pass; a 4xx answer or a refused address will not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

SIGNATURE_HEADER = "X-BACnet-Signature"
TIMESTAMP_HEADER = "X-BACnet-Timestamp"
DELIVERY_HEADER = "X-BACnet-Delivery"
# "Try later" answers, although 4xx.
RETRYABLE_4XX = {408, 429}


class SendError(Exception):
    """A notice not delivered; ``retry`` if a later attempt may succeed."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body with the secret>``, as the header carries it."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without the body: say so instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post_webhook(url: str, secret: str, payload: dict[str, Any], delivery_id: int) -> int:
    """POST the payload as JSON, signed; returns the HTTP status (2xx) or raises
    ``SendError``. The timestamp is in the body too, so the signature covers it: a
    receiver can refuse an old message replayed."""
    if not url.lower().startswith(("http://", "https://")):
        raise SendError(f"Not an http:// or https:// URL: {url}", retry=False)
    now = int(time.time())
    body = json.dumps({**payload, "timestamp": now}, sort_keys=True).encode()
    request = urllib.request.Request(  # noqa: S310 (http and https only, checked above)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "bacnet-monitor-alerts",
            SIGNATURE_HEADER: sign(secret, body),
            TIMESTAMP_HEADER: str(now),
            DELIVERY_HEADER: str(delivery_id),
        },
    )
    try:
        with _opener.open(request, timeout=settings.ALERT_WEBHOOK_TIMEOUT_S) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        detail = _excerpt(exc)
        if 300 <= exc.code < 400:
            raise SendError(
                f"HTTP {exc.code}: redirects are not followed; set the final URL", retry=False
            ) from None
        retry = exc.code >= 500 or exc.code in RETRYABLE_4XX
        raise SendError(f"HTTP {exc.code} {exc.reason}{detail}", retry=retry) from None
    except urllib.error.URLError as exc:  # refused, unreachable, name not found, TLS
        raise SendError(f"Could not reach {url}: {exc.reason}", retry=True) from None
    except (TimeoutError, OSError) as exc:  # a timeout while reading the answer
        raise SendError(f"No answer from {url}: {exc or 'timed out'}", retry=True) from None


def _excerpt(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(300).decode(errors="replace").strip()
    except Exception:  # the body is only a help to the operator
        return ""
    return f": {text}" if text else ""


def send_email(recipients: list[str], subject: str, body: str, delivery_id: int) -> None:
    """Send through Django's mail settings (``EMAIL_*``, bounded by ``EMAIL_TIMEOUT``), or
    raise ``SendError``. The server's 5xx (an address refused, authentication) is final;
    4xx and connection trouble are tried again."""
    message = EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        headers={DELIVERY_HEADER: str(delivery_id)},
        connection=get_connection(fail_silently=False),
    )
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        refused = ", ".join(f"{addr} ({code})" for addr, (code, _) in exc.recipients.items())
        raise SendError(
            f"Recipients refused: {refused}", retry=any(c < 500 for c in codes)
        ) from None
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else exc.smtp_error
        )
        raise SendError(
            f"Mail server said {exc.smtp_code} {text}", retry=exc.smtp_code < 500
        ) from None
    except (smtplib.SMTPException, OSError) as exc:  # disconnected, refused, timed out
        host = f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
        raise SendError(f"Mail server {host}: {exc or type(exc).__name__}", retry=True) from None
