from alembic import context

from auth_service.models import SCHEMA, AuthBase
from shared.migrations import run_env

run_env(context, AuthBase.metadata, SCHEMA)
