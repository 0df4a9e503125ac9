"""``nersemble-zarr info``."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info(store: str, as_json: bool) -> None:
    """Show what STORE holds: benchmark / participant / sequence, cameras × frames, images (codec),
    alpha, point clouds, tracking versions, bytes on disk and completeness."""
    from nersemble_zarr.pipelines.info import format_info, store_info

    described = store_info(store)
    click.echo(json.dumps(described.to_dict(), indent=2) if as_json else format_info(described))
