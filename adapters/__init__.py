"""Platform adapters behind one small :class:`~adapters.base.Adapter` contract."""

from adapters.base import Adapter, EventSink

__all__ = ["Adapter", "EventSink"]
