"""Where an S3 client sends its requests and which keys sign them, resolved the way botocore does.

The thin client (``memfs/remotes/s3.py``) reads the settings users already give s3fs and the
AWS SDKs: the cloud's storage options (``key``, ``secret``, ``token``, ``anon``, ``profile``,
``endpoint_url``, ``client_kwargs``), ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``,
``AWS_REGION`` / ``AWS_DEFAULT_REGION``, and the shared files (``AWS_SHARED_CREDENTIALS_FILE``,
``AWS_CONFIG_FILE``, ``AWS_PROFILE``). Credentials come in botocore's order for the static
sources: options, environment, the credentials file, the config file.

Some sources need botocore's machinery: ``credential_process``, SSO, assuming a role, a web
identity token, container or instance metadata; so do an HTTP(S) proxy,
FIPS or dual-stack endpoints. (A CA bundle, ``AWS_CA_BUNDLE`` or the profile's ``ca_bundle``,
is the thin client's too.) For those ``resolve`` raises
``NeedsBotocore`` and the caller uses s3fs instead, so nobody loses access to a bucket they
reached before; only the start-up cost differs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from memfs.record import FrozenRecord

TYPE_CHECKING = False  # typing costs an S3 push ~2 ms to import
if TYPE_CHECKING:
    from typing import Any

# Options s3fs takes that the thin client understands (others go to s3fs).
_OPTIONS = {"key", "secret", "token", "anon", "profile", "endpoint_url", "client_kwargs",
            "config_kwargs", "skip_instance_cache", "use_listings_cache"}  # fmt: skip
_CLIENT_KWARGS = {"endpoint_url", "region_name", "aws_access_key_id", "aws_secret_access_key",
                  "aws_session_token"}  # fmt: skip
# botocore Config settings whose meaning the thin client keeps (its own timeouts and retries).
_CONFIG_KWARGS = {"connect_timeout", "read_timeout", "retries"}
# Profile settings only botocore can act on: they come before the credentials file.
_BEFORE_FILES = ("role_arn", "web_identity_token_file", "sso_session", "sso_start_url")
# Transport settings only botocore acts on (FIPS or dual-stack hosts; proxies: _proxied).
_TRANSPORT_ENV = ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT")
_TRANSPORT_PROFILE = ("use_fips_endpoint", "use_dualstack_endpoint", "services")


class NeedsBotocore(Exception):
    """These settings need botocore's credential chain (or an s3fs option memfs doesn't read)."""


class NoCredentials(Exception):
    """No credentials anywhere, and no metadata service to ask."""


class Credentials(FrozenRecord):
    """The keys that sign requests."""

    __slots__ = _fields = ("access_key", "secret_key", "token")
    access_key: str
    secret_key: str
    token: str | None

    def __init__(self, access_key: str, secret_key: str, token: str | None = None) -> None:
        self._set(access_key, secret_key, token)

    def __repr__(self) -> str:
        """Names the key, never the secret or the token (errors and logs show no values)."""
        return f"Credentials(access_key={self.access_key!r}, secret_key=..., token=...)"


class S3Config(FrozenRecord):
    """One client's endpoint, region and credentials (None: unsigned, ``anon=True``)."""

    __slots__ = _fields = (
        "scheme", "host", "region", "credentials", "path_style", "region_fixed", "ca_bundle"
    )  # fmt: skip
    scheme: str
    host: str  # host[:port] as sent in the Host header
    region: str
    credentials: Credentials | None
    path_style: bool  # custom endpoints: /bucket/key; AWS: bucket.s3.region.amazonaws.com/key
    region_fixed: bool  # False: region guessed, follow S3's x-amz-bucket-region redirects
    ca_bundle: str | None  # certificates to trust for https instead of the system's

    def __init__(
        self,
        scheme: str,
        host: str,
        region: str,
        credentials: Credentials | None,
        path_style: bool,
        region_fixed: bool,
        ca_bundle: str | None = None,
    ) -> None:
        self._set(scheme, host, region, credentials, path_style, region_fixed, ca_bundle)


def resolve(options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> S3Config:
    """The client settings for these storage options and this environment."""
    env = os.environ if environ is None else environ
    unknown = set(options) - _OPTIONS
    client_kwargs = dict(options.get("client_kwargs") or {})
    unknown |= {f"client_kwargs.{name}" for name in set(client_kwargs) - _CLIENT_KWARGS}
    config_kwargs = set(options.get("config_kwargs") or {})
    unknown |= {f"config_kwargs.{name}" for name in config_kwargs - _CONFIG_KWARGS}
    if unknown:
        raise NeedsBotocore(f"options {sorted(unknown)}")
    profile_name = (
        options.get("profile") or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE")
    )
    profile = _profile(env, profile_name)
    endpoint = (
        options.get("endpoint_url")
        or client_kwargs.get("endpoint_url")
        or env.get("AWS_ENDPOINT_URL_S3")
        or env.get("AWS_ENDPOINT_URL")
        or profile.get("endpoint_url")
    )
    region_given = (
        client_kwargs.get("region_name")
        or env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or profile.get("region")
    )
    region = region_given or "us-east-1"
    credentials = (
        None if options.get("anon") else _credentials(options, client_kwargs, env, profile)
    )
    if any(env.get(name) for name in _TRANSPORT_ENV) or any(
        name in profile for name in _TRANSPORT_PROFILE
    ):
        raise NeedsBotocore("FIPS or dual-stack endpoints")
    ca_bundle = env.get("AWS_CA_BUNDLE") or profile.get("ca_bundle") or None
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NeedsBotocore(f"endpoint {endpoint!r}")
        config = S3Config(parts.scheme, parts.netloc, region, credentials, True, True, ca_bundle)
    else:
        host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
        guessed = not region_given
        config = S3Config("https", host, region, credentials, False, not guessed, ca_bundle)
    if _proxied(config, env):
        raise NeedsBotocore("an HTTP proxy")
    return config


def _proxied(config: S3Config, env: Mapping[str, str]) -> bool:
    """Whether botocore would send this endpoint's requests through an HTTP(S)_PROXY."""
    scheme = config.scheme
    if not (env.get(f"{scheme.upper()}_PROXY") or env.get(f"{scheme}_proxy")):
        return False
    from urllib.request import proxy_bypass_environment

    host = config.host.rsplit(":", 1)[0] if not config.host.endswith("]") else config.host
    no_proxy = {"no": env.get("NO_PROXY") or env.get("no_proxy") or ""}
    return not proxy_bypass_environment(host, no_proxy)


def _credentials(
    options: Mapping[str, Any],
    client_kwargs: Mapping[str, Any],
    env: Mapping[str, str],
    profile: dict[str, str],
) -> Credentials:
    """The first static source that has keys, in botocore's order."""
    key = options.get("key") or client_kwargs.get("aws_access_key_id")
    secret = options.get("secret") or client_kwargs.get("aws_secret_access_key")
    token = options.get("token") or client_kwargs.get("aws_session_token")
    if key and secret:
        return Credentials(key, secret, token)
    # botocore: a profile named in the options (not AWS_PROFILE) skips the environment's keys
    named = bool(options.get("profile"))
    if not named and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return Credentials(
            env["AWS_ACCESS_KEY_ID"],
            env["AWS_SECRET_ACCESS_KEY"],
            env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None,
        )
    shared = profile.get("#credentials") or {}
    needs_botocore = any(name in profile or name in shared for name in _BEFORE_FILES)
    if needs_botocore or env.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        raise NeedsBotocore("credentials from a role, web identity or SSO")
    if shared.get("aws_access_key_id"):
        return _from_profile(shared)
    if "credential_process" in profile or "credential_process" in shared:
        raise NeedsBotocore("credential_process")
    if profile.get("aws_access_key_id"):
        return _from_profile(profile)
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true" and not any(
        name in env
        for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")
    ):
        raise NoCredentials
    raise NeedsBotocore("credentials from container or instance metadata")


def _from_profile(section: Mapping[str, str]) -> Credentials:
    if not section.get("aws_secret_access_key"):
        raise NeedsBotocore("a profile with a key but no secret")
    token = section.get("aws_session_token") or section.get("aws_security_token")
    return Credentials(
        section["aws_access_key_id"], section["aws_secret_access_key"], token or None
    )


def _profile(env: Mapping[str, str], name: str | None) -> dict[str, Any]:
    """The profile's settings from the config file, its credentials-file section under
    ``#credentials``; {} when neither file has it (an unknown named profile -> botocore)."""
    chosen = name or "default"
    config_file = env.get("AWS_CONFIG_FILE") or "~/.aws/config"
    credentials_file = env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
    config = _read_ini(config_file)
    section = f"profile {chosen}"
    settings = dict(
        config.get(section) or (config.get("default") if chosen == "default" else {}) or {}
    )
    from_credentials = _read_ini(credentials_file).get(chosen)
    if from_credentials:
        settings["#credentials"] = dict(from_credentials)
    if name and not settings:
        raise NeedsBotocore(f"profile {name!r} is in neither AWS file")
    return settings


def _read_ini(path: str) -> dict[str, dict[str, str]]:
    """An AWS ini file's sections ({} if the file is missing)."""
    file = Path(os.path.expanduser(path))
    try:
        text = file.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return {}
    import configparser

    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text, str(file))
    except configparser.Error as error:
        raise NeedsBotocore(f"{file} could not be parsed") from error
    return {name: dict(parser.items(name)) for name in parser.sections()}
