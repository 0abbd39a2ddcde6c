"""Entry module for the celery command: `celery -A workers.worker worker` (and `beat`)."""

from celery.signals import setup_logging

from config import Settings
from relay.logs import configure_logging
from workers.celery_app import create_celery

settings = Settings.from_env()
app = create_celery(settings)


@setup_logging.connect
def use_relay_logging(**_: object) -> None:
    """Log like the relay (structured, with event ids) instead of Celery's own format."""
    configure_logging(settings.log_level, settings.log_format)
