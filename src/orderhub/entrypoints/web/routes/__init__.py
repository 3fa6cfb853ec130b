"""Route handlers, one module per door: orders, commands, feed, channels, ops, webhooks."""
