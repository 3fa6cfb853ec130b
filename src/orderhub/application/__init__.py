"""The service layer: use cases that drive the domain through ports."""
