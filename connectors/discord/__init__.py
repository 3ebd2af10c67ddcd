"""Discord, for customers (DMs, an optional support channel) and agents (a thread per
conversation in the agents' channel), through discord.py.

The protocol layer the Discord connector is a thin shell over, free of kefu's storage:
``config`` (the channel's settings) and ``client`` (discord.py pointed at the configured
REST base and gateway, with kefu's helpers and refusals).
"""
