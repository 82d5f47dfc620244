"""`python -m bus.upstream`: the register of workarounds, with the installed fingerprints."""

from __future__ import annotations

import sys

from bus.upstream.registry import defined_in, distribution, drifts, fingerprint, registered


def main() -> int:
    changed = 0
    for w in registered():
        print(w.where)
        print(f"  issue: {w.issue}")
        drifted = {d.target for d in drifts(w)}
        for target, recorded in w.upstream.items():
            how = "replaces " if target in w.replaces else "relies on"
            dist, _, installed = distribution(target)
            try:
                now = fingerprint(target)
            except (ImportError, AttributeError, TypeError, OSError):
                now = "(not found)"
            status = f"CHANGED {recorded} -> {now}" if target in drifted else f"ok {recorded}"
            print(f"  {how} {target} ({dist} {installed}, defined in {defined_in(target)}): {status}")
        changed += bool(drifted)
    print(f"{changed} workaround(s) to re-check" if changed else "every fingerprint matches the installed code")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
