"""``python -m chat_service``: serve on :8003."""

from shared.serve import serve

serve("chat_service.app:create_app", default_port=8003)
