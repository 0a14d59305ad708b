from retention_shared.service import run_service

from retention_features.app import create_app

run_service("features", create_app)
