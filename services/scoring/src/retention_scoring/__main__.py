from retention_scoring.app import create_app
from retention_shared.service import run_service

run_service("scoring", create_app)
