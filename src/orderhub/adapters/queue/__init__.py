"""Queue adapters implementing :class:`~orderhub.application.ports.CommandQueue`: dramatiq
(Redis or RabbitMQ) in production, an in-process asyncio worker in embedded mode."""
