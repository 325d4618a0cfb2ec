"""Re-make linkage's shipped starting model, ``trust/linkage/default_model.json``.

The trust links its first records with this model, before it has data of its own to estimate
one on (``tiptrust link train`` does that later). It is estimated by EM, exactly as batch
linkage estimates one, on a synthetic population of the simulator — never on real data — so it
holds no information about any real person. The records are what the resolver compares of each
victim: every agency export read through its own mapping into case records (identifiers and
context), as the trust receives them. Deterministic: the same code makes the same file.

    .venv/bin/python scripts/train_linkage_model.py [--persons 5000] [--seed 11]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.linkage_incremental import (  # noqa: E402
    _schema,
    plain_records,
    simulated_arrivals,
)
from trust.linkage import KeyedHasher, LinkageSettings, prepare, train  # noqa: E402
from trust.linkage.model import DEFAULT_MODEL_PATH  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        sim = simulated_arrivals(args.seed, args.persons, Path(d))
    schema = _schema()
    records = [prepare(r) for a in sim.arrivals for r in plain_records(schema.decode(a.avro))]
    # the key only names blocks; the estimated parameters do not depend on it
    training = train(LinkageSettings(), records, KeyedHasher(b"\0" * 32))
    model = training.linker.model.to_dict()
    model["trained_on"] = {
        "what": "synthetic population of tiptrust's simulator (no real data)",
        "simulated_persons": args.persons,
        "simulator_seed": args.seed,
        "records": len(records),
    }
    DEFAULT_MODEL_PATH.write_text(json.dumps(model, indent=1, sort_keys=True) + "\n")
    print(
        json.dumps(
            {"written": str(DEFAULT_MODEL_PATH.relative_to(ROOT)), "version": model["version"]}
        )
    )


if __name__ == "__main__":
    main()
