"""Object-storage stores (``s3://``, ``gs://``, ``az://``): actionable connection errors.

LanceDB reports a bad bucket, an unreachable endpoint or a plain-HTTP
endpoint without ``allow_http`` as one multi-line Rust error dump. The store
turns it into a one-line :class:`~embedstore.errors.InputError` with
:func:`connect_error`, naming the URI, the cause and the storage option that
fixes it.

Storage options (``--storage-option KEY=VALUE``, ``EMBEDSTORE_STORAGE_<KEY>``,
or ``Store(storage_options=...)``) go to LanceDB unchanged. For an
S3-compatible server the usual set is ``endpoint``, ``region``,
``aws_access_key_id``, ``aws_secret_access_key`` and, for ``http://``
endpoints, ``allow_http=true``; LanceDB also reads the ``AWS_*`` environment
variables itself.
"""

from __future__ import annotations

import os
import re

from .errors import InputError

#: Prefix of the environment variables that hold storage options (``EMBEDSTORE_STORAGE_ENDPOINT=...``).
ENV_PREFIX = "EMBEDSTORE_STORAGE_"


def env_storage_options() -> dict[str, str]:
    """Storage options from ``EMBEDSTORE_STORAGE_<KEY>`` variables, keys lower-cased.

    :class:`~embedstore.store.Store` merges them under its ``storage_options``
    for object-store URIs, so the API and the CLI read the same settings.

    Examples
    --------
    >>> os.environ["EMBEDSTORE_STORAGE_ALLOW_HTTP"] = "true"
    >>> env_storage_options()["allow_http"]
    'true'
    >>> del os.environ["EMBEDSTORE_STORAGE_ALLOW_HTTP"]
    """
    return {k[len(ENV_PREFIX):].lower(): v for k, v in os.environ.items() if k.startswith(ENV_PREFIX) and v}

_CAUSES = (
    ("NoSuchBucket", "the bucket does not exist: create it first (e.g. 'aws s3 mb s3://{bucket}')"),
    ("BadScheme", "the endpoint is plain http: add the storage option allow_http=true"),
    ("InvalidAccessKeyId", "the access key is not valid: check aws_access_key_id"),
    ("SignatureDoesNotMatch", "the secret key is wrong: check aws_secret_access_key"),
    ("AccessDenied", "access denied: check the credentials and the bucket policy"),
    ("ConnectionRefused", "cannot reach the endpoint (connection refused): check the storage option endpoint"),
    ("dns error", "cannot resolve the endpoint's host: check the storage option endpoint"),
    ("timed out", "the endpoint did not answer in time: check endpoint/network, or raise the 'timeout' option"),
)


def bucket_of(uri: str) -> str:
    """The bucket (container) name of an object-store URI.

    Examples
    --------
    >>> bucket_of("s3://lab-bucket/stores/main")
    'lab-bucket'
    """
    rest = uri.split("://", 1)[-1]
    return rest.split("/", 1)[0]


def connect_error(uri: str, exc: BaseException) -> InputError:
    """A one-line :class:`InputError` explaining why ``uri`` could not be opened.

    Examples
    --------
    >>> str(connect_error("s3://b/x", ValueError("... <Code>NoSuchBucket</Code> ...")))[:53]
    'cannot open store s3://b/x: the bucket does not exist'
    """
    text = str(exc)
    for marker, cause in _CAUSES:
        if marker.lower() in text.lower():
            return InputError(f"cannot open store {uri}: {cause.format(bucket=bucket_of(uri))}")
    first = re.sub(r"\s+", " ", text.splitlines()[0] if text else type(exc).__name__)[:200]
    return InputError(f"cannot open store {uri}: {first}; check the storage_options= values "
                      "(endpoint, region, credentials, allow_http)")
