"""`durapay`: the one command line entry point.

    durapay dev [--exit-after-demo | --no-wait] [--no-demo] [--no-fake-providers]
                                                              local stack: Temporal, worker, API, demo
    durapay worker                                            a worker process
    durapay api                                               an API process
    durapay demo [--no-fake-providers]                        the demo against a running Temporal server
    durapay migrate                                           bring the database schema up to date
    durapay reconcile --since 24h [--repair] | --schedule     compare payments with their gateways
    durapay config check                                      validate and print the effective config
    durapay bench [options]                                   benchmark engine and durapay (BENCHMARKS.md)
    durapay bank import FILE | unmatched | payouts | payout-done PAYMENT --by WHO
                                                              bank transfers: statements, payouts

Global options: --config FILE (else $DURAPAY_CONFIG, else ./durapay.toml), --secrets-dir DIR,
--log-level, --log-format text|json (else [logging] format). Exit codes: 0 ok, 1 a failed run (a demo outcome differs, Temporal unreachable, a port
taken, drift left by `reconcile`), 2 bad configuration or usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from activities.gateways.plugins import PLUGINS
from workers import reconcile
from workers.config import ConfigError, DurapayConfig, flatten, load_config
from workers.demo import demo_defaults
from workers.devserver import DevServerError
from workers.logging_setup import configure_logging

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="durapay",
        description="A payment orchestrator where every payment is a durable Temporal workflow.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML config file (default: $DURAPAY_CONFIG or ./durapay.toml)"
    )
    parser.add_argument(
        "--secrets-dir", metavar="DIR", help="directory of secret files (default: $DURAPAY_SECRETS_DIR)"
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="default: WARNING for dev and demo (their output is the table), INFO otherwise",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text for people, json for a log pipeline: one object per line (default: [logging] format)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev", help="run the local stack (Temporal dev server, worker, API) and the demo"
    )
    dev.add_argument(
        "--exit-after-demo",
        "--no-wait",
        dest="exit_after_demo",
        action="store_true",
        help="stop everything once the demo is done; exit 1 if an outcome differs (CI)",
    )
    dev.add_argument("--no-demo", action="store_true", help="start the stack without running the demo")
    _fake_providers_argument(dev)

    commands.add_parser("worker", help="run a worker (workflows and activities) until SIGINT/SIGTERM")
    commands.add_parser("api", help="run the HTTP API until SIGINT/SIGTERM")

    _fake_providers_argument(
        commands.add_parser(
            "demo",
            help="run a worker and the API in-process against a running Temporal server, then the demo",
        )
    )

    commands.add_parser("migrate", help="bring the database schema up to date")

    from workers import bank

    bank.add_arguments(
        commands.add_parser("bank", help="bank transfers: import statements, unmatched lines, payouts")
    )

    reconcile.add_arguments(
        commands.add_parser(
            "reconcile", help="compare payments with their gateways, report drift, optionally repair it"
        )
    )

    from workers.bench import main as bench

    bench.add_arguments(
        commands.add_parser("bench", help="measure the engine and durapay side by side (see BENCHMARKS.md)")
    )

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    config_commands.add_parser("check", help="validate the configuration and print it, secrets masked")
    return parser


def _fake_providers_argument(parser: argparse.ArgumentParser) -> None:
    with_fakes = ", ".join(plugin.id for plugin in PLUGINS.values() if plugin.fake is not None)
    parser.add_argument(
        "--no-fake-providers",
        dest="fake_providers",
        action="store_false",
        help=f"do not run the fake provider servers ({with_fakes}); gateways you configure never use them",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    interactive = args.command in ("dev", "demo")
    level = args.log_level or ("WARNING" if interactive else "INFO")
    if args.command == "bench":  # starts its own servers and stacks; needs no configuration
        configure_logging(level, args.log_format or "text")
        from workers.bench import main as bench

        return asyncio.run(bench.run(args))
    try:
        # dev and demo layer what the demo's flows need under the user's own settings.
        defaults = demo_defaults() if interactive else None
        config = load_config(args.config, secrets_dir=args.secrets_dir, defaults=defaults)
        # Configuration errors are printed, not logged: logging can wait for the configuration.
        configure_logging(level, args.log_format or config.logging.format)
        if args.command == "config":
            return config_check(config)
        return asyncio.run(_run(args, config))
    except ConfigError as exc:
        print(f"durapay: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, DevServerError) as exc:  # Temporal unreachable, a port taken, ...
        print(f"durapay: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        return EXIT_INTERRUPTED


def config_check(config: DurapayConfig) -> int:
    """Validate everything a worker or API process validates at start, gateway sections and fraud
    rules included, without connecting to anything; print the result with secrets masked."""
    from workers.temporal_tls import check_security
    from workers.worker import fraud_settings, gateway_registry, routing_settings

    fraud = fraud_settings(config)
    registry = gateway_registry(config)
    try:
        routing_settings(config, registry)
    finally:
        asyncio.run(registry.aclose())
    connection = check_security(config.temporal)
    shown = config.masked()
    shown["fraud_detection"] = fraud.model_dump(mode="json")  # the effective rules, defaults included
    for key, value in flatten(shown):
        # JSON values read like TOML ones: quoted strings, lower-case booleans.
        print(f"{key} = {json.dumps(value)}")
    for line in connection:
        print(f"# {line}")
    print(f"# enabled gateways: {', '.join(registry.ids())}")
    print(f"# known gateways: {', '.join(sorted(PLUGINS))}")
    print("# configuration OK")
    return EXIT_OK


async def _run(args: argparse.Namespace, config: DurapayConfig) -> int:
    # Imported per command: `durapay migrate` should not pay for loading the whole worker.
    if args.command == "dev":
        from workers.dev import run_dev

        return await run_dev(
            config,
            run_demo=not args.no_demo,
            exit_after_demo=args.exit_after_demo,
            fake_providers=args.fake_providers,
        )
    if args.command == "worker":
        from workers.worker import run_worker

        await run_worker(config)
        return EXIT_OK
    if args.command == "api":
        from workers.api_server import run_api

        await run_api(config)
        return EXIT_OK
    if args.command == "demo":
        from workers.dev import run_demo_against

        return await run_demo_against(config, fake_providers=args.fake_providers)
    if args.command == "migrate":
        from workers.worker import prepare_database

        await prepare_database(config)
        print(f"database {config.database.display_url} is up to date")
        return EXIT_OK
    if args.command == "reconcile":
        return await reconcile.run_reconcile(config, args)
    if args.command == "bank":
        from workers.bank import run_bank

        return await run_bank(config, args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse only allows the above


if __name__ == "__main__":
    sys.exit(main())
