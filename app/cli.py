"""The `pactwatch` command line."""
from __future__ import annotations

import sys

import typer

from app.settings import Settings

cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="pactwatch: a record of agreements "
                  "between adversaries and of each side's compliance.")
keys_cli = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, help="Manage API keys.")
cli.add_typer(keys_cli, name="keys")
worker_cli = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                         help="Run one worker kind as its own process (single-active on PostgreSQL).")
cli.add_typer(worker_cli, name="worker")


def _runtime(migrate: bool = True):  # noqa: ANN202
    from app.migrate import upgrade
    from app.runtime import build

    settings = Settings()
    if migrate:
        upgrade(settings.database_url)
    return build(settings)


def _configure_logs() -> None:
    from app.logs import configure

    configure(json_lines=Settings().log_json)


@cli.command()
def migrate() -> None:
    """Create or upgrade every table."""
    from app.migrate import upgrade

    upgrade(Settings().database_url)
    typer.echo("migrated")


@cli.command()
def serve(host: str = "127.0.0.1", port: int = 8000, demo: bool = typer.Option(False, "--demo"),
          no_workers: bool = typer.Option(False, "--no-workers")) -> None:
    """Migrate, then serve the API and dashboard (workers in-process unless --no-workers)."""
    import uvicorn

    from app import demo as demo_mod
    from app.main import create_app

    _configure_logs()
    runtime = _runtime()
    if demo:
        demo_mod.load(runtime)
    app = create_app(runtime=runtime, workers=not no_workers)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, log_config=None)
    finally:
        runtime.close()


@cli.command("demo")
def demo_command() -> None:
    """Load the Istanbul demo agreement when the store does not have it, then exit."""
    from app import demo as demo_mod

    runtime = _runtime()
    try:
        loaded = demo_mod.load(runtime)
        runtime.read_models.catch_up()
    finally:
        runtime.close()
    typer.echo(f"demo {'loaded' if loaded else 'already present'}: {demo_mod.AGREEMENT_ID}")


@worker_cli.command("projections")
def worker_projections() -> None:
    """Keep the read models caught up until interrupted."""
    from app.workers import ProjectionWorker, run_until_signalled

    _configure_logs()
    runtime = _runtime()
    try:
        run_until_signalled(ProjectionWorker(runtime.read_models))
    finally:
        runtime.close()


@worker_cli.command("webhooks")
def worker_webhooks() -> None:
    """Deliver webhooks until interrupted (run `serve --no-workers` beside it)."""
    from app.workers import run_until_signalled

    _configure_logs()
    runtime = _runtime()
    try:
        run_until_signalled(runtime.webhooks.worker())
    finally:
        runtime.close()


audit_cli = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, help="Tamper evidence.")
cli.add_typer(audit_cli, name="audit")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain; exit 1 and print the first bad position on stderr."""
    import json

    from projections import ledger

    runtime = _runtime()
    try:
        with runtime.engine.connect() as conn:
            result = ledger.verify(conn)
    finally:
        runtime.close()
    typer.echo(json.dumps(result))
    if not result["ok"]:
        typer.echo(f"first bad position: {result['first_bad_position']}", err=True)
        raise typer.Exit(1)


@cli.command()
def replay() -> None:
    """Rebuild every read model from history, compare with the live ones, switch."""
    import json

    from projections.rebuild import rebuild

    runtime = _runtime()
    try:
        typer.echo(json.dumps(rebuild(runtime.read_models)))
    finally:
        runtime.close()


@cli.command("export")
def export_command(file: str) -> None:
    """Write the global log as JSON Lines (one envelope per line, log order)."""
    from app.audit import export_log

    runtime = _runtime()
    try:
        with open(file, "w", encoding="utf-8", newline="\n") as out, runtime.engine.connect() as conn:
            count = export_log(conn, out)
    finally:
        runtime.close()
    typer.echo(f"exported {count} events to {file}")


@cli.command("import")
def import_command(file: str) -> None:
    """Load an export into an empty store, hash for hash; refuse anything doubtful."""
    from app.audit import ImportRefused, import_log

    runtime = _runtime()
    try:
        count = import_log(runtime.app, file)
    except ImportRefused as exc:
        typer.echo(f"import refused: {exc}", err=True)
        raise typer.Exit(1) from None
    except FileNotFoundError:
        typer.echo(f"import refused: no file {file}", err=True)
        raise typer.Exit(1) from None
    finally:
        runtime.close()
    typer.echo(f"imported {count} events from {file}")


@keys_cli.command("create")
def keys_create(name: str, role: str = typer.Option(..., "--role", help="reader, recorder or admin")) -> None:
    """Create a key; its token is printed alone on the last line, once."""
    from app.keys import KeyError_

    runtime = _runtime()
    try:
        token = runtime.keys.create(name, role)
    except KeyError_ as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        runtime.close()
    typer.echo(f"created key {name!r} with role {role}; the token is shown once:")
    typer.echo(token)


@keys_cli.command("list")
def keys_list() -> None:
    """List keys (never their tokens)."""
    runtime = _runtime()
    try:
        for key in runtime.keys.list():
            state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
            typer.echo(f"{key['name']}\t{key['role']}\t{key['created_at']}\t{state}")
    finally:
        runtime.close()


@keys_cli.command("revoke")
def keys_revoke(name: str) -> None:
    """Revoke a key at once."""
    from app.keys import KeyError_

    runtime = _runtime()
    try:
        runtime.keys.revoke(name)
    except KeyError_ as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        runtime.close()
    typer.echo(f"revoked {name}")


def main() -> None:
    cli(prog_name="pactwatch")


if __name__ == "__main__":
    sys.exit(main())
