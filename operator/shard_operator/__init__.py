"""shard-operator: Anoma's shard supervisor as a Kubernetes operator.

Layers, from the bottom up:

- ``keycodec``, ``keys``, ``missing``, ``spec``, ``keymap``, ``render``, ``conditions``,
  ``failing``, ``reasons``, ``decisions``: pure functions and types (naming, encoding,
  the key map format, desired objects, the controller's decisions), no I/O;
- ``kube``: the resource table and generic verbs over the Kubernetes API;
- ``cache``: the observed state fed by watch events;
- ``workqueue``, ``controller``, ``steps``, ``writes``: the queue, the sync loop, the
  reconcile of one node id step by step, and the write layer;
- ``election``, ``fence``, ``leader``: one leader by Lease; no write without a fresh
  lease;
- ``handlers``: kopf wiring (watch events, startup, settings);
- ``api`` (start_shard, get_shard_key_map), ``client`` (Ordering side), ``server``
  (the shard process) and ``cli``.
"""

__version__ = "0.1.0"
