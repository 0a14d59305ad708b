from retention_features.app import create_app
from retention_shared.service import run_service

run_service("features", create_app)
