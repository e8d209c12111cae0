"""The platform's web client: server-rendered pages over the public API (a backend-for-frontend)."""
