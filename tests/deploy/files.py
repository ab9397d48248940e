"""Where the deploy files are, and the configuration they carry loaded as durapay would load it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from workers.config import DurapayConfig, load_config

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"


def load_deploy_config(toml_text: str, tmp_path: Path, environ: Mapping[str, str]) -> DurapayConfig:
    """`toml_text` validated by `load_config`."""
    config_file = tmp_path / "durapay.toml"
    config_file.write_text(toml_text)
    return load_config(config_file, environ=environ)
