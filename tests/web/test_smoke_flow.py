import httpx

from tests.web.conftest import page_csrf


async def test_signed_in_user_adds_and_sees_a_task(ann: httpx.AsyncClient) -> None:
    csrf = await page_csrf(ann)
    page = await ann.get("/tasks")
    key = page.text.split('name="idempotency_key" value="')[1].split('"')[0]
    created = await ann.post(
        "/tasks",
        data={"csrf_token": csrf, "idempotency_key": key, "title": "Buy milk", "priority": "high"},
    )
    assert created.status_code == 303, created.text
    listing = await ann.get("/tasks")
    assert "Buy milk" in listing.text
