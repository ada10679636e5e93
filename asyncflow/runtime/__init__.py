"""The engine: runs a frozen :class:`~asyncflow.runtime.spec.FlowSpec` on the event loop.

Nothing here imports ``asyncflow.flow``; the flow builder compiles itself into a ``FlowSpec``
and hands it over, so a run never sees later edits to the graph.
"""
