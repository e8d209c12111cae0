"""``python -m todo_service``: serve on :8002."""

from shared.serve import serve
from todo_service.settings import get_settings

serve("todo_service.app:create_app", default_port=8002, settings=get_settings())
