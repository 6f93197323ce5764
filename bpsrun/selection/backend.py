"""Selection backends: who executes a round's validated Lightly selection config.

`conf/selection/backend/<name>.yaml` names one by `_target_` (`selection/backend=lightly_worker`).
"""

from __future__ import annotations

from typing import Any, Protocol

from bpsrun.selection.engine import SelectionInputs, select


class SelectionBackend(Protocol):
    def select(self, config: dict[str, Any], inputs: SelectionInputs) -> list[str]:
        """File names picked from `inputs.candidates`, in pick order."""
        ...


class LocalEngine:
    def select(self, config: dict[str, Any], inputs: SelectionInputs) -> list[str]:
        return [inputs.candidates[i] for i in select(config, inputs)]
