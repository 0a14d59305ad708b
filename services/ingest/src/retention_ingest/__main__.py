from retention_shared.service import run_service

from retention_ingest.app import create_app

run_service("ingest", create_app)
