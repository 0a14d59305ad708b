from retention_shared.service import run_service
from retention_trainer.app import create_app

run_service("trainer", create_app)
