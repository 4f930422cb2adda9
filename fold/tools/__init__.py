"""The tools built on the engine: a fold another tool made checked against its original
(``fold.tools.check``) and the peers measured that way (``fold.tools.peer_runs``), the quantization
view and real int8 (``fold.tools.quantization``, ``fold.tools.int8_report``), and a folder of models
in worker processes (``fold.tools.zoo``, ``fold.tools.zoo_worker``), and a fold asserted in a pytest
test (``fold.tools.pytest_plugin``). Format-neutral: what a format
adds (its int8 runtime, its peers, its converter) is a part of its frontend, found through the table."""
