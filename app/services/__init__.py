"""Domain logic. No Flask request objects here: blueprints call these with
plain values, and Celery tasks call them with job ids."""
