"""Entry module for the celery command: `celery -A workers.worker worker`."""

from config import Settings
from workers.celery_app import create_celery

app = create_celery(Settings.from_env())
