from alembic import context

from shared.migrations import run_env
from web_service.models import SCHEMA, WebBase

run_env(context, WebBase.metadata, SCHEMA)
