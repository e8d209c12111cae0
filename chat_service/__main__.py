"""``python -m chat_service``: serve on :8003."""

from chat_service.settings import get_settings
from shared.serve import serve

serve("chat_service.app:create_app", default_port=8003, settings=get_settings())
