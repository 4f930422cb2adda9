"""One model of a zoo run, in a process of its own: ``python -m fold.zoo_worker TASK_JSON OUT_JSON``.

It folds and verifies the model as ``python -m fold`` does (nothing is written but OUT_JSON), then
runs each peer of its format and checks the peer's model as ``python -m fold check`` does. OUT_JSON
is rewritten after every step and names the step under way (``running``) and those still to come
(``pending``), so that when the process dies or is stopped, ``fold.zoo.run_task`` knows whose row
the crash or the timeout is. Errors of a model are its row's reason; the process itself exits 0.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

from fold.errors import in_words
from fold.frontend import LOAD_OPTIONS
from fold.zoo import error_row, verdict_row


def _write(out: Path, state: dict) -> None:
    partial = out.with_suffix(".part")
    partial.write_text(json.dumps(state))
    partial.replace(out)  # a reader never sees half a file


def _verify_options(options: dict[str, Any], input_names: set[str]) -> dict[str, Any]:
    """The verification's options for this model: ``--input-shape`` for the inputs it has (a zoo's
    models have different inputs), the inputs file's arrays."""
    from fold.files import read_arrays

    shapes = {name: tuple(dims) for name, dims in (options.get("shapes") or {}).items() if name in input_names}
    arrays = read_arrays(options["inputs_file"]) if options.get("inputs_file") else None
    return {"samples": options["samples"], "seed": options["seed"], "atol": options.get("atol"),
            "shapes": shapes or None, "arrays": arrays}


def run(task: dict, out: Path) -> None:
    """Fold, verify and run the peers on ``task``'s model, writing the state to ``out`` after every step."""
    state: dict[str, Any] = {"format": None, "bn_before": None, "fold": None, "peers": [],
                             "running": {"tool": "foldscope", "action": None}, "pending": []}
    _write(out, state)
    try:
        from fold.check import check  # noqa: F401 - the peers' check; imported before the clock starts
        from fold.files import check_model_file
        from fold.pipeline import fold_file, verify

        fmt = check_model_file(task["path"])
        options = task["options"]
        load = {k: options.get(k) for k in LOAD_OPTIONS if options.get(k) and k in fmt.options}
        result = fold_file(task["path"], **load)
        names = {s.name for s in result.frontend.inputs(result.original)}
        verify_options = _verify_options(options, names)
        checked = verify(result, **verify_options)
    except Exception as exc:  # noqa: BLE001 - the model's row says what went wrong, in one sentence
        state.update(fold=error_row("foldscope", in_words(exc)).to_dict(), running=None)
        _write(out, state)
        return
    state.update(format=fmt.name, bn_before=result.bn_before,
                 fold=verdict_row("foldscope", checked.verification, result.bn_after,
                                  result.timings_s["fold"]).to_dict())
    _peers(task, result, verify_options, state, out)


def _peers(task: dict, result, verify_options: dict[str, Any], state: dict, out: Path) -> None:
    """Each peer of the model's format, checked against the original; the state says which runs."""
    from fold.comparison import Side
    from fold.peers import PEERS_BY_FORMAT, run_peer

    peers = list(PEERS_BY_FORMAT.get(result.frontend.format.name, ())) if task["peers"] else []
    original = Side(result.frontend, result.original, result.graph_before)
    for k, peer in enumerate(peers):
        state["running"] = {"tool": peer.tool, "action": peer.action}
        state["pending"] = [{"tool": p.tool, "action": p.action} for p in peers[k + 1:]]
        _write(out, state)
        peer_run = run_peer(peer, original, **verify_options)
        row = error_row(peer.tool, peer_run.error, peer.action) if peer_run.verification is None else \
            verdict_row(peer.tool, peer_run.verification, peer_run.bn_left, peer_run.seconds, peer.action)
        state["peers"].append(row.to_dict())
    state.update(running=None, pending=[])
    _write(out, state)


def main(argv: list[str]) -> int:
    warnings.simplefilter("ignore")  # the parent reads OUT_JSON, not stderr
    run(json.loads(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
