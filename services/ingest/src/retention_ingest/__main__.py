from retention_ingest.app import create_app
from retention_shared.service import run_service

run_service("ingest", create_app)
