"""Driving adapters: the web app (warehouse API, webhooks, operations), the CLI, the worker."""
