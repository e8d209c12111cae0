"""The web service's parts on their own: keys and rotation, messages, the chart, purging."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from jinja2 import nodes
from jinja2.defaults import DEFAULT_FILTERS, DEFAULT_NAMESPACE

from shared.clock import utcnow
from tests.web.conftest import Platform, count
from web_service.crypto import InvalidToken, TokenBox, load_token_box, parse_keys
from web_service.gateway_client import ApiError, GatewayClient
from web_service.overview import DAYS, chart
from web_service.sessions import SessionStore
from web_service.settings import WebSettings
from web_service.views import ENV, TEMPLATES, friendly


def test_a_new_key_first_still_opens_what_the_old_one_sealed() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    sealed = TokenBox([old]).seal("access")
    rotated = TokenBox([new, old])
    assert rotated.open(sealed) == "access"
    resealed = rotated.reseal(sealed)
    assert TokenBox([new]).open(resealed) == "access"
    with pytest.raises(InvalidToken):
        TokenBox([new]).open(sealed)


def test_keys_are_read_one_a_line_newest_first() -> None:
    first, second = Fernet.generate_key(), Fernet.generate_key()
    text = f"# rotated 2026-12\n{first.decode()}\n\n{second.decode()}\n"
    assert parse_keys(text) == [first, second]
    with pytest.raises(ValueError, match="32"):
        parse_keys("not-a-key")
    with pytest.raises(ValueError, match="no key"):
        parse_keys("# nothing\n")


def test_keys_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key()
    path = tmp_path / "keys"
    path.write_text(key.decode() + "\n")
    monkeypatch.setenv("WEB_SESSION_KEYS_FILE", str(path))
    settings = WebSettings(_env_file=None, environment="production")
    box = load_token_box(settings)
    assert TokenBox([key]).open(box.seal("x")) == "x"


def test_production_refuses_to_start_without_a_key() -> None:
    settings = WebSettings(_env_file=None, environment="production")
    with pytest.raises(RuntimeError, match="WEB_SESSION_KEYS"):
        load_token_box(settings)


def test_development_makes_a_private_key_once(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "web"
    settings = WebSettings(_env_file=None, environment="development", dev_session_key_file=path)
    sealed = load_token_box(settings).seal("x")
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_token_box(settings).open(sealed) == "x"


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (ApiError(404, "task_not_found"), "no longer exists"),
        (ApiError(409, "idempotent_request_in_progress"), "still being saved"),
        (ApiError(409, "task_limit_reached"), "Delete some to add more"),
        (ApiError(409, "conversation_full"), "Start a new conversation"),
        (ApiError(412, "precondition_failed"), "Nothing was overwritten"),
        (ApiError(422, "validation_error"), "not valid"),
        (ApiError(429, "rate_limited", retry_after=7), "wait 7 seconds"),
        (ApiError(503, "service_unavailable", retry_after=3), "Nothing was changed"),
        (ApiError(503, "outcome_unknown"), "will not be saved twice"),
        (ApiError(504, "gateway_timeout"), "took too long"),
    ],
)
def test_every_refusal_has_words_for_a_person(error: ApiError, words: str) -> None:
    assert words in friendly(error)


def test_every_filter_and_global_the_templates_are_given_is_used_by_one() -> None:
    """What the environment adds to Jinja's own is there for a template: one no template
    uses is dead code, and a reader would look for the page that shows it."""
    ours = {("filter", name) for name in ENV.filters.keys() - DEFAULT_FILTERS.keys()}
    ours |= {("global", name) for name in ENV.globals.keys() - DEFAULT_NAMESPACE.keys()}
    used: set[tuple[str, str]] = set()
    for path in TEMPLATES.glob("*.html"):
        tree = ENV.parse(path.read_text())
        used |= {("filter", node.name) for node in tree.find_all(nodes.Filter)}
        used |= {("global", node.name) for node in tree.find_all(nodes.Name)}
    assert ours - used == set()


def test_the_chart_covers_fourteen_days_oldest_first() -> None:
    today = date(2027, 3, 14)
    drawn = chart(
        [{"date": "2027-03-14", "completed": 4}, {"date": "2027-03-01", "completed": 2}], today
    )
    bars = drawn["bars"]
    assert len(bars) == DAYS
    assert bars[0]["day"] == today - timedelta(days=13)
    assert bars[-1]["value"] == 4
    assert bars[0]["value"] == 2
    assert drawn["total"] == 6
    assert bars[-1]["height"] > bars[0]["height"] > 0
    assert all(bar["height"] == 0 for bar in bars[1:-1])
    empty = chart([], today)
    assert empty["total"] == 0
    assert all(bar["height"] == 0 for bar in empty["bars"])


def test_the_tallest_bar_leaves_room_above_it_for_its_number() -> None:
    """The number over a bar is drawn 4 units above it, up to 20 units high: the tallest bar
    stops low enough for it to stay inside the drawing, not cut off at the top."""
    drawn = chart([{"date": "2027-03-14", "completed": 7}], date(2027, 3, 14))
    tallest = drawn["bars"][-1]
    assert tallest["value"] == 7
    assert tallest["y"] - 4 - 20 >= 0
    assert tallest["y"] + tallest["height"] == drawn["base"]


async def test_purge_deletes_ended_and_idle_sessions_only(
    clean: Platform, ann: object, box: TokenBox
) -> None:
    now = utcnow()
    await clean.db.fetch_row(
        "INSERT INTO web.sessions (id_hash, user_id, access_token, refresh_token, "
        "access_expires_at, expires_at, last_seen_at, csrf_token, profile) VALUES "
        "('ended', 'u', 'x', 'x', $1, $1, $2, 'c', '{}'), "
        "('idle', 'u', 'x', 'x', $3, $3, $4, 'c', '{}')",
        now - timedelta(seconds=1),
        now,
        now + timedelta(days=30),
        now - timedelta(days=8),
        write=True,
    )
    settings = WebSettings(_env_file=None, environment="test")
    store = SessionStore(clean.db, box, GatewayClient(settings), settings, utcnow)
    assert await store.purge() == 2
    # Ann's live session stays.
    assert await count(clean, "SELECT count(*) FROM web.sessions") == 1
