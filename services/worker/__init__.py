"""Celery workers: the app, its queues and tasks, the broker, and the outbox dispatcher."""
