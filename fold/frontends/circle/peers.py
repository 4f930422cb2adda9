"""The tool a circle model's fold is measured against: tico's O1 pipeline (Samsung's own optimizer, whose
linear fusions fold a MUL/ADD right after a layer). tico is imported when it runs."""

from __future__ import annotations

from fold.frontends.circle.io import model_from_bytes
from fold.frontends.circle.model import CircleModel
from fold.frontends.formats import Peer, installed_version


def _tico_o1(model: CircleModel) -> tuple[str, CircleModel]:
    from tico.circle.export import optimize_for_export

    return "circle", model_from_bytes(optimize_for_export(model.data), f"tico_{model.name}", model.runtime)


#: The peers of circle models.
PEERS: tuple[Peer, ...] = (Peer(f"tico {installed_version('tico')}", "O1 pipeline (its BN fusion included)", _tico_o1,
                                ("tico",), "circle"),)
