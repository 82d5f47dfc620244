"""Every workaround of faust-streaming and aiokafka internals, and nothing else.

The bus runs on faust and aiokafka through their public interfaces everywhere but here: this
package is the only code that overrides a private upstream method, reads or writes a private
upstream attribute, or depends on upstream behaviour that is not documented (the boundary is
checked by `tests/unit/test_upstream.py`). Each piece is declared with `registry.workaround`: what
it replaces or relies on, in which version, the fingerprint of that code, the upstream issue, and
what to re-check on an upgrade, which the same test enforces.

- `faust_worker`: the worker's consumer and producer (fetch wait, batch delivery, rebalance
  hold, commits refused past a failed delivery, every send watched);
- `faust_tables`: tables whose changelog partition follows the key, and a restore that writes
  the store directly;
- `faust_sensors`: faust's stuck-stream check fed without its Monitor;
- `aiokafka_admin`: admin requests aiokafka has no method for (ACLs).

Upgrading faust or aiokafka: bump the pin, run `python -m bus.upstream`, re-check each changed
piece as its note says, then record the new fingerprints and versions.
"""
