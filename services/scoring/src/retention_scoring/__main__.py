from retention_shared.service import run_service

from retention_scoring.app import create_app

run_service("scoring", create_app)
