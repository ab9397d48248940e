"""Where the deploy files are, and the configuration they carry loaded as durapay would load it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from workers.config import DurapayConfig, WorkerConfig, load_config

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"


def load_deploy_config(toml_text: str, tmp_path: Path, environ: Mapping[str, str]) -> DurapayConfig:
    """`toml_text` validated by `load_config`. The deploy files set `[worker] health_bind`, the worker's
    health listener that the health-endpoint work of issue #15 adds on another branch: until
    `WorkerConfig` knows the key, the rest of the file is still checked without it."""
    if "health_bind" not in WorkerConfig.model_fields:
        toml_text = re.sub(r"(?m)^health_bind = .*$", "", toml_text)
    config_file = tmp_path / "durapay.toml"
    config_file.write_text(toml_text)
    return load_config(config_file, environ=environ)
