"""Request and response bodies of the auth service. Requests reject unknown fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from auth_service.models import EMAIL_MAX, NAME_MAX
from auth_service.passwords import normalised
from shared.text import Composed
from shared.timezones import TimeZoneName

PASSWORD_MIN = 8
PASSWORD_MAX = 128

# What is read before normalising: NFKC composes a letter and its combining marks into one
# character, so a password within the bound can be several times as long as typed.
_TYPED_MAX = 4 * PASSWORD_MAX


def _length_normalised(shortest: int, *, or_as_typed: bool = False) -> AfterValidator:
    """Bounds a password's length in its normal form, the one hashed (``passwords``), so the
    limits hold however the keyboard composed it; the value passes on as typed.
    ``or_as_typed``: within the bounds as typed is enough (login: a hash made before
    passwords were normalised is of the typed form, which NFKC can make longer)."""

    def check(password: str) -> str:
        if or_as_typed and shortest <= len(password) <= PASSWORD_MAX:
            return password
        length = len(normalised(password))
        if length < shortest:
            raise PydanticCustomError(
                "string_too_short",
                "String should have at least {min_length} characters",
                {"min_length": shortest},
            )
        if length > PASSWORD_MAX:
            raise PydanticCustomError(
                "string_too_long",
                "String should have at most {max_length} characters",
                {"max_length": PASSWORD_MAX},
            )
        return password

    return AfterValidator(check)


Password = Annotated[
    str,
    Field(
        max_length=_TYPED_MAX,
        json_schema_extra={"minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX},
    ),
    _length_normalised(PASSWORD_MIN),
]
# Login accepts any stored password's length; the bound only stops absurd bodies.
LoginPassword = Annotated[
    str,
    Field(max_length=_TYPED_MAX, json_schema_extra={"minLength": 1, "maxLength": PASSWORD_MAX}),
    _length_normalised(1, or_as_typed=True),
]
# Stored and measured in NFC (``shared.text``).
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX), Composed
]
Email = Annotated[EmailStr, Field(max_length=EMAIL_MAX)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Strict):
    email: Email
    password: Password
    name: Name | None = None
    timezone: TimeZoneName = Field(
        default="UTC", description="IANA time zone for the user's dates, e.g. 'Europe/Paris'"
    )


class LoginIn(Strict):
    email: Email
    password: LoginPassword


class RefreshIn(Strict):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class MeUpdate(Strict):
    name: Name | None = None
    # Absent keeps it; null is not a zone (UTC is spelled "UTC"), nor in the document.
    timezone: TimeZoneName | SkipJsonSchema[None] = None

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("a time zone cannot be null; UTC is 'UTC'")
        return value


class PasswordChangeIn(Strict):
    current_password: LoginPassword
    new_password: Password


class DeleteAccountIn(Strict):
    password: LoginPassword


class UserPublic(BaseModel):
    id: uuid.UUID
    email: str
    name: str | None
    timezone: str
    created_at: datetime
    updated_at: datetime


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user: UserPublic


class JWKS(BaseModel):
    keys: list[dict[str, str]]
