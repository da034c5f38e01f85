"""cvbulk: an async bulk engine for Azure Custom Vision, with a local emulator of the service."""

__version__ = "0.1.0"

__all__ = ["__version__"]
