"""Settings of the gateway (environment prefix ``GATEWAY_``)."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from typing import Annotated, Any, Literal

from limits import RateLimitItem, parse_many
from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import ServiceSettings

RateLimitStrategy = Literal["fixed-window", "sliding-window-counter", "moving-window"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# A list from the environment: a JSON array or plain comma-separated values.
StrList = Annotated[list[str], NoDecode]


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")
    # A Redis URL carries its password.
    secret_fields = ServiceSettings.secret_fields | {"rate_limit_storage_uri"}

    # Where each service listens. A service that is not running answers 503, so the gateway
    # starts fine without any of them.
    auth_url: str = "http://127.0.0.1:8001"
    todo_url: str = "http://127.0.0.1:8002"
    chat_url: str = "http://127.0.0.1:8003"
    # The web client: every path outside /api/ except the gateway's /healthz and /readyz.
    web_url: str = "http://127.0.0.1:8004"

    # Each service's own OpenAPI document, fetched for the merged one at /api/openapi.json.
    auth_openapi_path: str = "/api/auth/openapi.json"
    todo_openapi_path: str = "/api/tasks/openapi.json"
    chat_openapi_path: str = "/api/chat/openapi.json"

    # Per upstream: seconds to connect, and to wait for each read of the answer. A chat turn
    # runs a language model and its tools, so it may take far longer than a task read.
    auth_connect_timeout: float = 2.0
    auth_read_timeout: float = 15.0
    todo_connect_timeout: float = 2.0
    todo_read_timeout: float = 15.0
    chat_connect_timeout: float = 2.0
    chat_read_timeout: float = 120.0
    # A page is rendered from a few API calls; a chat page streams, and its stream is idle
    # between events for as long as the chat service's own answer takes.
    web_connect_timeout: float = 2.0
    web_read_timeout: float = 120.0

    # Kept-alive connections per upstream, and how long an idle one is kept. Shorter than
    # uvicorn's own keep-alive (5 s), so the gateway never reuses a connection the service
    # is closing.
    upstream_max_connections: int = Field(default=512, ge=2)
    upstream_keepalive_seconds: float = 4.0
    # Event streams relayed at once per upstream (each holds one of its connections for its
    # whole life): fewer than the connections, so streams never take them all. The next is a
    # 429 `too_many_streams`; each service also bounds its streams per user.
    upstream_max_streams: int = Field(default=256, ge=1)

    # Rate limits in the `limits` notation ("10/minute", several joined with ";"); empty
    # turns one off. Per client IP on login, register and refresh (each endpoint its own
    # bucket); per user on every authenticated request.
    rate_limit_auth_ip: str = "20/minute;200/hour"
    rate_limit_user: str = "600/minute"
    # Per user on a chat turn (POST /api/chat), besides the user's limit: a turn may call the
    # language model up to CHAT_OPENAI_MAX_TOOL_ROUNDS + 1 times, each with the history, so
    # the user's 600 a minute would let one account spend thousands of model calls a minute.
    rate_limit_chat_turn: str = "20/minute;500/day"
    # fixed-window is the cheapest per request (one counter per key and window; a burst of
    # up to twice the limit can straddle a window boundary); the others trade CPU for
    # smoothness.
    rate_limit_strategy: RateLimitStrategy = "fixed-window"
    # memory:// keeps counters in this process; redis://host:6379/0 shares them between
    # gateway replicas.
    rate_limit_storage_uri: str = "memory://"

    # The public edge takes nginx's defaults (large_client_header_buffers 4 8k): one header
    # field up to 8 KiB, the request line and headers up to 32 KiB, at most 100 fields. The
    # services accept more, so what the gateway accepted and completed is never refused there.
    max_header_bytes: int = 8 * 1024
    max_header_section_bytes: int = 32 * 1024
    max_header_count: int = 100

    # Peers whose X-Forwarded-For / -Proto / -Host are believed (a load balancer in front of
    # the gateway): addresses or networks. Empty: the direct peer is the client.
    trusted_proxies: StrList = []
    # Peers behind the gateway that call the API on a browser's behalf (the web service),
    # whose X-Forwarded-For names that browser: addresses or networks. Only the client
    # address is taken from them (per-IP limits, the X-Forwarded-For sent on); their
    # X-Forwarded-Proto and -Host are not. Empty: every such call counts as the web
    # service's own address.
    trusted_forwarders: StrList = []

    # Browser origins allowed to call the API (exact, e.g. "https://app.example.com").
    cors_origins: StrList = []
    cors_max_age: int = 600

    # Sent on every response; browsers ignore it over plain HTTP. Empty turns it off.
    strict_transport_security: str = "max-age=63072000; includeSubDomains"

    # One line per request at INFO (method, path, status, time, request id, user id). Off by
    # default: every service logs each request it answers with the same X-Request-ID, and the
    # gateway always logs what it answers itself (refusals, upstream failures).
    access_log: bool = False
    # Seconds each upstream gets to answer its /readyz for GET /api/health.
    health_timeout: float = 2.0
    # A service's OpenAPI document that could not be fetched is fetched again at most this
    # often (the merged document leaves it out meanwhile); a fetched one is kept 30 s.
    openapi_retry_seconds: float = Field(default=5.0, gt=0)

    @field_validator("trusted_proxies", "trusted_forwarders", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _streams_leave_connections(self) -> GatewaySettings:
        if self.upstream_max_streams >= self.upstream_max_connections:
            raise ValueError(
                "GATEWAY_UPSTREAM_MAX_STREAMS must be below GATEWAY_UPSTREAM_MAX_CONNECTIONS"
            )
        return self

    @field_validator("rate_limit_auth_ip", "rate_limit_user", "rate_limit_chat_turn")
    @classmethod
    def _parse_limits(cls, value: str) -> str:
        if value.strip():
            parse_many(value)  # raises ValueError on a malformed limit
        return value

    @field_validator("trusted_proxies", "trusted_forwarders")
    @classmethod
    def _parse_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)
        return value

    def auth_ip_limits(self) -> list[RateLimitItem]:
        return _limit_items(self.rate_limit_auth_ip)

    def user_limits(self) -> list[RateLimitItem]:
        return _limit_items(self.rate_limit_user)

    def chat_turn_limits(self) -> list[RateLimitItem]:
        return _limit_items(self.rate_limit_chat_turn)

    def trusted_networks(self) -> list[IPNetwork]:
        return [ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies]

    def forwarder_networks(self) -> list[IPNetwork]:
        return [ipaddress.ip_network(entry, strict=False) for entry in self.trusted_forwarders]


@lru_cache
def get_settings() -> GatewaySettings:
    return GatewaySettings()


def _limit_items(value: str) -> list[RateLimitItem]:
    """A rate-limit setting's limits; none when it is empty (the limit is off)."""
    return parse_many(value) if value.strip() else []
