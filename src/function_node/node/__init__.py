"""The HTTP service: auth middleware, OpenAI proxy, challenge endpoint, lifecycle."""
