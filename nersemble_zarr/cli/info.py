"""``nersemble-zarr info``."""

from __future__ import annotations

import click

from nersemble_zarr.cli.options import emit_report, json_option


@click.command()
@click.argument("store")
@json_option()
def info(store: str, json_out: str | None) -> None:
    """Show what STORE holds: benchmark / participant / sequence, cameras × frames of width x height pixels,
    images (codec), alpha, point clouds, tracking versions, bytes on disk and completeness."""
    from nersemble_zarr.pipelines.info import format_info, store_info

    described = store_info(store)
    emit_report(json_out, described.to_dict, lambda: format_info(described))
