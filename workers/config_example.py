"""The gateway parts of the example configuration, generated from the gateway plugins: each
`[payment.<id>]` section of deploy/durapay.example.toml from its settings model (every key with its
default) and the model's example snippet (`json_schema_extra={"examples": [{...}]}`: the values of
required keys and what else the example shows), and the gateway keys of the example Kubernetes
Secret (deploy/k8s/secret.example.yaml) from the snippet's secrets. Each file holds them between
two marker lines; `python -m workers.config_example` rewrites them, and tests/workers/
test_config_example.py fails while a committed file differs from what the plugins generate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from activities.gateways.plugin import GatewayPlugin
from activities.gateways.plugins import PLUGINS

DEPLOY = Path(__file__).parents[1] / "deploy"
EXAMPLE_TOML = DEPLOY / "durapay.example.toml"
SECRET_YAML = DEPLOY / "k8s" / "secret.example.yaml"
BEGIN = "-- generated from the gateway plugins (python -m workers.config_example): do not edit --"
END = "-- end of the generated part --"
_COMMENT_COLUMN = 35


class ExampleError(Exception):
    """A plugin's settings model cannot be shown: a required key has no example value."""


def snippet(model: type[BaseModel]) -> dict[str, Any]:
    extra = model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    first = examples[0] if isinstance(examples, list) and examples else None
    return dict(first) if isinstance(first, dict) else {}


def toml_sections() -> str:
    """Every plugin's `[payment.<id>]` section, in PLUGINS order."""
    return "\n\n".join("\n".join(_section(plugin)) for plugin in PLUGINS.values())


def secret_entries() -> str:
    """`payment__<id>__<key>: "<example>"` for each secret the plugins' snippets give an example of."""
    return "\n".join(
        f"{_secret_file(plugin, key)}: {json.dumps(str(value))}"
        for plugin in PLUGINS.values()
        for key, value in snippet(plugin.settings_model()).items()
        if key in plugin.secret_fields
    )


def _secret_file(plugin: GatewayPlugin, key: str) -> str:
    return f"payment__{plugin.id}__{key}"


def _section(plugin: GatewayPlugin) -> Iterator[str]:
    model = plugin.settings_model()
    table = f"payment.{plugin.id}"
    secrets = set(plugin.secret_fields)
    yield f"[{table}]"
    yield from _keys(model, snippet(model), table, secrets)
    files = [_secret_file(plugin, name) for name in plugin.secret_fields if "." not in name]
    if files:
        yield "# secrets: from the environment or the secrets directory, never this file:"
        yield f"#   {', '.join(files)}"
    for name, sub_model in _tables(model):
        yield ""
        yield f"[{table}.{name}]"
        yield from _keys(sub_model, {}, f"{table}.{name}", {s for s in secrets if s.startswith(f"{name}.")})


def _tables(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    return [
        (name, field.annotation)
        for name, field in model.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    ]


def _keys(model: type[BaseModel], example: dict[str, Any], table: str, secrets: set[str]) -> Iterator[str]:
    tables = {name for name, _ in _tables(model)}
    for name, field in model.model_fields.items():
        if name in secrets or name in tables:
            continue
        default = field.get_default(call_default_factory=True)
        if name in example:
            marks = [] if example[name] == default else ["example"]
            yield _line(f"{name} = {_value(example[name])}", marks + _described(field.description))
        elif default is PydanticUndefined:
            raise ExampleError(f"[{table}] {name} is required: give it an example in the settings model")
        elif default is None:
            yield _line(f"# {name} =", ["optional", *_described(field.description)])
        else:
            yield _line(f"{name} = {_value(default)}", _described(field.description))


def _described(description: str | None) -> list[str]:
    return [description] if description else []


def _line(code: str, comments: list[str]) -> str:
    if not comments:
        return code
    return f"{code.ljust(_COMMENT_COLUMN - 1)} # {': '.join(comments)}"


def _value(value: Any) -> str:
    # JSON spells strings, numbers, booleans and lists of them as TOML does.
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, list):
        value = [str(item) if isinstance(item, Path) else item for item in value]
    return json.dumps(value)


def replace_generated(text: str, generated: str, comment: str, indent: str = "") -> str:
    """`text` with the lines between its marker lines replaced by `generated`."""
    begin, end = f"{indent}{comment} {BEGIN}", f"{indent}{comment} {END}"
    lines = text.splitlines()
    try:
        start, stop = lines.index(begin), lines.index(end)
    except ValueError:
        raise ExampleError(f"the marker lines {begin!r} / {end!r} are missing") from None
    body = [f"{indent}{line}" if line else "" for line in generated.splitlines()]
    return "\n".join([*lines[: start + 1], *body, *lines[stop:]]) + "\n"


def generated_files() -> dict[Path, str]:
    """The example files as the plugins make them."""
    return {
        EXAMPLE_TOML: replace_generated(EXAMPLE_TOML.read_text(), toml_sections(), "#"),
        SECRET_YAML: replace_generated(SECRET_YAML.read_text(), secret_entries(), "#", indent="  "),
    }


def main() -> None:
    for path, text in generated_files().items():
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
