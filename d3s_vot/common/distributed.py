"""This process's place in a torchrun job, shared by the benchmark runners and training."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional
from d3s_vot.common.cli import UserError


class TorchrunEnvError(UserError, ValueError):
    """RANK / WORLD_SIZE / LOCAL_RANK are malformed."""


@dataclass(frozen=True)
class DistContext:
    """Rank 0 of 1 when not launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "DistContext":
        """Read torchrun's RANK, WORLD_SIZE and LOCAL_RANK (absent: a single process)."""
        environ = os.environ if environ is None else environ
        values = {}
        for key, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
            text = environ.get(key, "")
            try:
                values[key] = int(text) if text != "" else default
            except ValueError:
                raise TorchrunEnvError(f"environment variable {key}={text!r} is not an integer") from None
        if values["WORLD_SIZE"] < 1 or not 0 <= values["RANK"] < values["WORLD_SIZE"]:
            raise TorchrunEnvError(f"bad torchrun environment: RANK={values['RANK']} WORLD_SIZE={values['WORLD_SIZE']}")
        return cls(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
