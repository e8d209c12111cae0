from shared.db import Database
from tests.support.serving import serve
from web_service.app import create_app
from web_service.settings import WebSettings


async def test_probes_answer(migrated_url: str, database: Database) -> None:
    settings = WebSettings(_env_file=None, environment="test", database_url=migrated_url)
    async with serve(create_app(settings, db=database)) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
