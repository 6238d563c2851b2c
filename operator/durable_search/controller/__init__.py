"""The operator: kopf events routed to one supervised worker per object (see ``handlers``,
``runtime``), the workers over the engine's decisions (``tasks``, ``searches``), and the I/O
they need (``credentials``, ``admission``, ``watcher``, ``events``, ``health``)."""
