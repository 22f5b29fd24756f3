"""Drivers: the narrow interface the runtime needs from a GPU API (base.Driver), and its implementations."""
from .base import DeviceInfo, Driver  # noqa: F401
