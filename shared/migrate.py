"""``python -m shared.migrate [service ...]``: bring each service's schema to head."""

from __future__ import annotations

import argparse
import importlib
import logging

from shared.migrations import upgrade

SERVICES = ("auth_service", "todo_service", "chat_service", "web_service")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("services", nargs="*", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for service in args.services or available_services():
        settings = importlib.import_module(f"{service}.settings").get_settings()
        upgrade(service, settings.migration_url())
        logging.info("%s: migrated", service)


def available_services() -> list[str]:
    found = []
    for service in SERVICES:
        try:
            importlib.import_module(f"{service}.settings")
        except ModuleNotFoundError:
            continue
        found.append(service)
    return found


if __name__ == "__main__":
    main()
