from retention_shared.service import run_service
from retention_webhooks.app import create_app

run_service("webhooks", create_app)
