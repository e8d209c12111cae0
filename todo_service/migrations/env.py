from alembic import context

from shared.migrations import run_env
from todo_service.models import SCHEMA, TodoBase

run_env(context, TodoBase.metadata, SCHEMA)
