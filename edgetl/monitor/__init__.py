"""Drift monitoring: does the line still look like what each adapter was trained on?

- ``reference``: fitted per adapter by the training process (``drift.npz``),
  read by the server with numpy only; a per-image drift score.
- ``statistics``: the window tests (features, class mix, confidence), as z values.
- ``monitor``: per-task windows and the ok / warning / drifted state, stored
  and audited off the serving path.
"""
