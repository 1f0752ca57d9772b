"""Webhooks: one place for each step of an event's life.

- events.py     the outbox: event rows written in the transaction that causes them
- endpoints.py  subscriber endpoints, their secrets, the tenant's callback secret
- delivery.py   signed attempts on a schedule, recorded; retries, disabling, sweeps
- network.py    the SSRF guard, at registration and at delivery
"""
