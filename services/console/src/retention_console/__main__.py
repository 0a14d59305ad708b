from retention_console.app import create_app
from retention_shared.service import run_service

run_service("console", create_app)
