"""``python -m auth_service``: serve on :8001."""

from auth_service.settings import get_settings
from shared.serve import serve

serve("auth_service.app:create_app", default_port=8001, settings=get_settings())
