"""kefu: the process, its config, CLI and web server."""
__version__ = "0.1.0"
