"""The shard server: one shard's cell(s) served over HTTP/JSON, durable across restarts.

Layers, from the inside out:

- :mod:`.cell` - the cell semantics of Anoma's shard process (pure);
- :mod:`..keycodec` (keys, shared with the operator), :mod:`.values`, :mod:`.state` -
  keys, strict JSON, the state and its snapshot form (pure);
- :mod:`.store` - the checksummed state file, atomic replacement, group commit;
- :mod:`.shard` - the service: operations, blocking readers, answer-after-durable;
- :mod:`.validation`, :mod:`.app`, :mod:`.openapi`, :mod:`.metrics` - HTTP;
- :mod:`.config`, :mod:`.main` - environment and the ``shard-server`` command.
"""
