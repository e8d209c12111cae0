"""``python -m todo_service``: serve on :8002."""

from shared.serve import serve

serve("todo_service.app:create_app", default_port=8002)
