"""``python -m web_service``: serve on :8004."""

from shared.serve import serve
from web_service.settings import get_settings

serve("web_service.app:create_app", default_port=8004, settings=get_settings())
