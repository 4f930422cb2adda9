"""The Model Explorer files say what their numbers mean."""

from __future__ import annotations

import json

from fold.engine.pipeline import fold
from fold.outputs.model_explorer import STATUS_WORDS, export, fold_status
from foldscope_app.examples import model_zoo
from tests.helpers import KERAS


def test_the_fold_status_node_data_names_every_status_in_words(tmp_path):
    result = fold(KERAS, model_zoo.dcgan_generator(base=16))
    export(result, tmp_path)
    data = json.loads((tmp_path / "before_fold.json").read_text())
    name = data["name"] if "name" in data else next(iter(data.values()))["name"]
    before, _ = fold_status(result)
    for value in {0, *before.values()}:
        assert f"{value} {STATUS_WORDS[value]}" in name, name
    assert "a BN folded into it" in name and "a BN folded away" in name
