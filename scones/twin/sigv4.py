"""AWS Signature Version 4 for the twin's own servers: verify what comes in, sign what we send.

Every twin service answers only requests signed with the credentials ``scones env`` prints
(``settings.access_key_id`` and its secret), as SeaweedFS already does for S3. ``Verifier``
recomputes a request's signature from its method, raw path, query, signed headers and payload
hash, for both forms AWS accepts: the ``Authorization`` header and a presigned URL
(``X-Amz-Signature`` in the query). The time stamp may be 15 minutes off, as on AWS; a presigned
URL is good until ``X-Amz-Date + X-Amz-Expires`` (at most 7 days). A failure is an ``AuthFailure``
whose ``kind`` the servers turn into AWS's error shape (``scones.twin.sigv4_http``).

``sign_headers`` and ``presign_url`` sign with botocore's own signer, for callers that speak raw
HTTP (benchmarks, tests); boto3 clients built from ``settings`` sign by themselves.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 15 * 60  # AWS accepts a time stamp up to 15 minutes off
MAX_EXPIRES_S = 7 * 24 * 3600  # the longest a presigned URL may live
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_TIMESTAMP = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")
_UNSIGNED_HASHES = (UNSIGNED_PAYLOAD, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")

# The kinds of failure (each server maps them onto its protocol's error codes).
MISSING = "missing"  # no signature at all
INCOMPLETE = "incomplete"  # a signature that lacks a part
UNKNOWN_KEY = "unknown_key"  # an access key other than the twin's
MISMATCH = "mismatch"  # wrong secret, tampered request or body
EXPIRED = "expired"  # time stamp over 15 minutes off, or a presigned URL past its expiry
REFUSED = "refused"  # a browser's request (Origin / Sec-Fetch-Site) or a foreign Host header

MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. Check your"
    " AWS Secret Access Key and signing method. Consult the service documentation for details."
)


class AuthFailure(Exception):
    """The request is not signed with the twin's credentials; ``kind`` says how (see above)."""

    def __init__(self, kind: str, message: str, service: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.service = service  # from the credential scope, when the request named one


@dataclass(frozen=True)
class SignedRequest:
    """What verification reads of an incoming request.

    ``headers``: lower-case names, repeated headers joined by ``,``; ``raw_path`` and
    ``raw_query``: exactly as sent on the wire (still percent-encoded); ``payload_sha256``: the
    hex SHA-256 of the body as received.
    """

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]
    payload_sha256: str


@dataclass(frozen=True)
class _Parts:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str


class Verifier:
    """Checks SigV4 signatures against one access key and secret (the twin's)."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        clock: Callable[[], float] = time.time,
        max_skew_s: int = MAX_SKEW_S,
    ) -> None:
        self.access_key = access_key
        self._secret = secret_key
        self._clock = clock
        self._max_skew = max_skew_s
        self._keys: dict[tuple[str, str, str], bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Any) -> Verifier:
        """The verifier for ``settings.access_key_id`` / ``settings.secret_access_key``."""
        return cls(settings.access_key_id, settings.secret_access_key)

    def verify(self, request: SignedRequest) -> str:
        """Return the service named in the credential scope; raise ``AuthFailure`` otherwise."""
        query = _query_pairs(request.raw_query)
        if any(key == "X-Amz-Signature" for key, _ in query):
            parts, expires = _presigned_parts(query)
            query = [(k, v) for k, v in query if k != "X-Amz-Signature"]
        elif "authorization" in request.headers:
            parts, expires = _header_parts(request.headers), None
        else:
            raise AuthFailure(MISSING, "Missing Authentication Token")
        if parts.access_key != self.access_key:
            raise AuthFailure(
                UNKNOWN_KEY, "The security token included in the request is invalid.", parts.service
            )
        self._check_time(parts, expires)
        if "host" not in parts.signed_headers:
            raise AuthFailure(
                INCOMPLETE,
                "'Host' must be a 'SignedHeader' in the AWS Authorization.",
                parts.service,
            )
        payload = request.headers.get("x-amz-content-sha256")
        claims_hash = payload is not None and payload not in _UNSIGNED_HASHES
        if claims_hash and not hmac.compare_digest(str(payload), request.payload_sha256):
            raise AuthFailure(
                MISMATCH,
                "The provided 'x-amz-content-sha256' does not match the body.",
                parts.service,
            )
        candidates = [payload] if payload is not None else [request.payload_sha256]
        if expires is not None and payload is None:
            candidates.append(UNSIGNED_PAYLOAD)  # presigned URLs may leave the body unsigned
        for candidate in candidates:
            expected = self._signature(request, query, parts, candidate)
            if hmac.compare_digest(expected, parts.signature):
                return parts.service
        raise AuthFailure(MISMATCH, MISMATCH_MESSAGE, parts.service)

    def _check_time(self, parts: _Parts, expires: int | None) -> None:
        when = _epoch(parts.timestamp, parts.service)
        if parts.date != parts.timestamp[:8]:
            raise AuthFailure(
                MISMATCH,
                f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date"
                f" from HTTP: '{parts.date}' != '{parts.timestamp[:8]}'",
                parts.service,
            )
        now = self._clock()
        skew = self._max_skew
        if when - now > skew:
            raise AuthFailure(
                EXPIRED,
                f"Signature not yet current: {parts.timestamp} is still later than"
                f" {_stamp(now + skew)} ({_stamp(now)} + {skew // 60} min.)",
                parts.service,
            )
        if expires is not None:
            if now > when + expires:
                raise AuthFailure(
                    EXPIRED,
                    f"Request has expired: signed {parts.timestamp}, valid for {expires} s,"
                    f" now {_stamp(now)}",
                    parts.service,
                )
        elif now - when > skew:
            raise AuthFailure(
                EXPIRED,
                f"Signature expired: {parts.timestamp} is now earlier than"
                f" {_stamp(now - skew)} ({_stamp(now)} - {skew // 60} min.)",
                parts.service,
            )

    def _signature(
        self, request: SignedRequest, query: list[tuple[str, str]], parts: _Parts, payload: str
    ) -> str:
        path = request.raw_path or "/"
        if parts.service != "s3":  # S3 signs the path as sent; the others normalize it
            path = quote(_remove_dot_segments(path), safe="/~")
        canonical = "\n".join(
            (
                request.method.upper(),
                path,
                _canonical_query(query),
                "".join(
                    f"{name}:{' '.join(request.headers.get(name, '').split())}\n"
                    for name in parts.signed_headers
                ),
                ";".join(parts.signed_headers),
                payload,
            )
        )
        scope = f"{parts.date}/{parts.region}/{parts.service}/aws4_request"
        string_to_sign = "\n".join(
            (ALGORITHM, parts.timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        key = self._signing_key(parts.date, parts.region, parts.service)
        return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()

    def _signing_key(self, date: str, region: str, service: str) -> bytes:
        """The derived key for one day, region and service (four HMACs, computed once)."""
        cache_key = (date, region, service)
        key = self._keys.get(cache_key)
        if key is None:
            key = f"AWS4{self._secret}".encode()
            for part in (date, region, service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            with self._lock:
                if len(self._keys) > 64:
                    self._keys.clear()
                self._keys[cache_key] = key
        return key


def _stamp(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def _epoch(timestamp: str, service: str) -> float:
    seconds = _parse_stamp(timestamp)
    if seconds is None:
        raise AuthFailure(INCOMPLETE, f"Invalid X-Amz-Date: {timestamp!r}", service)
    return seconds


@functools.lru_cache(maxsize=256)  # clients send the same stamp for a second's requests
def _parse_stamp(timestamp: str) -> float | None:
    match = _TIMESTAMP.match(timestamp)
    if not match:
        return None
    try:
        return float(calendar.timegm(tuple(int(g) for g in match.groups()) + (0, 0, 0)))
    except (ValueError, OverflowError):
        return None


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """The query's parameters, decoded (``+`` stays a plus, as SigV4 encodes it)."""
    if not raw_query:
        return []
    pairs = []
    for item in raw_query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def _canonical_query(pairs: list[tuple[str, str]]) -> str:
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal with empty segments dropped, as AWS's signers do."""
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment and segment != ".":
            out.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def _scope(credential: str, timestamp: str) -> tuple[str, str, str, str]:
    pieces = credential.split("/")
    if len(pieces) != 5 or pieces[4] != "aws4_request" or not all(pieces):
        service = pieces[3] if len(pieces) > 3 else ""
        raise AuthFailure(
            INCOMPLETE,
            f"Credential should be scoped to a valid region, service and date: {credential!r}"
            f" (expected KEY/YYYYMMDD/region/service/aws4_request, stamped {timestamp})",
            service,
        )
    return pieces[0], pieces[1], pieces[2], pieces[3]


def _header_parts(headers: Mapping[str, str]) -> _Parts:
    auth = headers["authorization"].strip()
    algorithm, _, rest = auth.partition(" ")
    if algorithm != ALGORITHM:
        raise AuthFailure(
            INCOMPLETE, f"Unsupported Authorization algorithm {algorithm[:40]!r}: sign with SigV4"
        )
    fields = {}
    for item in rest.split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not fields.get(n)]
    if missing:
        raise AuthFailure(
            INCOMPLETE, f"Authorization header requires '{missing[0]}' parameter. ({auth[:200]})"
        )
    timestamp = headers.get("x-amz-date")
    if timestamp is None and "date" in headers:
        try:
            timestamp = _stamp(parsedate_to_datetime(headers["date"]).timestamp())
        except (TypeError, ValueError):
            timestamp = None
    if not timestamp:
        raise AuthFailure(
            INCOMPLETE,
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    key, date, region, service = _scope(fields["Credential"], timestamp)
    return _Parts(
        key,
        date,
        region,
        service,
        tuple(fields["SignedHeaders"].split(";")),
        fields["Signature"],
        timestamp,
    )


def _presigned_parts(query: list[tuple[str, str]]) -> tuple[_Parts, int]:
    values = dict(query)
    names = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders")
    missing = [n for n in (*names, "X-Amz-Expires") if not values.get(n)]
    if missing:
        raise AuthFailure(INCOMPLETE, f"Presigned URL lacks the query parameter {missing[0]}")
    if values["X-Amz-Algorithm"] != ALGORITHM:
        raise AuthFailure(INCOMPLETE, "X-Amz-Algorithm only supports 'AWS4-HMAC-SHA256'")
    timestamp = values["X-Amz-Date"]
    key, date, region, service = _scope(values["X-Amz-Credential"], timestamp)
    try:
        expires = int(values["X-Amz-Expires"])
    except ValueError:
        expires = -1
    if not 0 < expires <= MAX_EXPIRES_S:
        raise AuthFailure(
            INCOMPLETE, "X-Amz-Expires must be a number of seconds from 1 to 604800", service
        )
    signed = tuple(values["X-Amz-SignedHeaders"].split(";"))
    return _Parts(key, date, region, service, signed, values["X-Amz-Signature"], timestamp), expires


# ------------------------------------------------------------------------------------ signing


def _credentials(settings: Any) -> Any:
    from botocore.credentials import Credentials

    return Credentials(settings.access_key_id, settings.secret_access_key)


def sign_headers(
    settings: Any,
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    service: str = "sagemaker",
) -> dict[str, str]:
    """``headers`` plus ``Authorization`` and ``X-Amz-Date`` for a raw HTTP request to a twin
    service, signed with ``settings``' credentials by botocore (``Host`` is signed as the URL's
    ``host:port``; send the request within 15 minutes, with these headers and this body)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(_credentials(settings), service, settings.region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def presign_url(
    settings: Any, method: str, url: str, *, expires: int = 3600, service: str = "sagemaker"
) -> str:
    """``url`` with SigV4 query authentication (``X-Amz-Signature``), good for ``expires``
    seconds and any body (the payload is left unsigned, as for S3's presigned PUT)."""
    from botocore.auth import S3SigV4QueryAuth, SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    class _UnsignedBody(SigV4QueryAuth):
        payload = S3SigV4QueryAuth.payload  # UNSIGNED-PAYLOAD

    request = AWSRequest(method=method, url=url)
    _UnsignedBody(_credentials(settings), service, settings.region, expires=expires).add_auth(
        request
    )
    return str(request.url)
