"""Sender families: one module each, all with the same `receive(source, request, ctx)`."""
