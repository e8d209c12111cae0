from alembic import context

from chat_service.models import SCHEMA, ChatBase
from shared.migrations import run_env

run_env(context, ChatBase.metadata, SCHEMA)
