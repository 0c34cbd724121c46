"""``mammohybrid config``: show the resolved configuration and list presets."""

from __future__ import annotations

import typer

from mammohybrid.cli.app import ConfigOption, SetOption, app, resolve_config
from mammohybrid.config import config_to_yaml, preset_names

config_app = typer.Typer(help="Show the resolved configuration or list the shipped presets.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def show(config: ConfigOption = None, overrides: SetOption = None) -> None:
    """Print the configuration after defaults, file/preset and --set overrides."""
    typer.echo(config_to_yaml(resolve_config(config, overrides)), nl=False)


@config_app.command("presets")
def presets() -> None:
    """List the configuration presets shipped with the package."""
    for name in preset_names():
        typer.echo(name)
