"""The service around the pose library: sources, sinks, configuration, the daemon, the command
line and ``bench``. It uses the library only through its public API (``edge.pose``)."""
