"""shard-operator: Anoma's shard supervisor as a Kubernetes operator.

Layers, from the bottom up:

- ``keys``, ``keymap``, ``render``, ``conditions``: pure functions (naming, encoding,
  the key map format, desired objects and status), no I/O;
- ``kube``: the thin async layer over the Kubernetes API;
- ``cache`` and ``controller``: the observed state fed by watch events, and the
  level-triggered reconcile of one node id at a time;
- ``handlers``: kopf wiring (watch events, startup, settings);
- ``api`` (start_shard, get_shard_key_map), ``client`` (Ordering side), ``server``
  (the shard process) and ``cli``.
"""

__version__ = "0.1.0"
