"""The ``embedstore`` command: a click group whose commands load lazily.

Each command lives in its own module under ``cli/`` and is imported only when
invoked (or listed by ``--help``, which imports no heavy library), so that
``embedstore --help`` stays instant. Every command is a thin wrapper over one
or a few calls of the Python API.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

#: command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "info": "embedstore.cli.store_cmds:info",
    "versions": "embedstore.cli.store_cmds:versions",
    "tag": "embedstore.cli.store_cmds:tag",
    "neighbors": "embedstore.cli.store_cmds:neighbors",
    "export": "embedstore.cli.store_cmds:export",
    "ingest": "embedstore.cli.ingest:ingest",
    "extract": "embedstore.cli.extract:extract",
    "models": "embedstore.cli.extract:models",
    "backends": "embedstore.cli.extract:backends",
    "train": "embedstore.cli.train:train",
    "runs": "embedstore.cli.train:runs",
    "rerun": "embedstore.cli.train:rerun",
    "predict": "embedstore.cli.predict:predict",
    "export-head": "embedstore.cli.predict:export_head",
    "train-raw": "embedstore.cli.raw:train_raw",
    "align": "embedstore.cli.alignment:align",
    "gap": "embedstore.cli.alignment:gap",
    "sweep": "embedstore.cli.alignment:sweep",
    "report": "embedstore.cli.alignment:report",
    "compact": "embedstore.cli.maintenance:compact",
    "cleanup": "embedstore.cli.maintenance:cleanup",
    "doctor": "embedstore.cli.maintenance:doctor",
    "upgrade": "embedstore.cli.maintenance:upgrade",
    "repair": "embedstore.cli.maintenance:repair",
    "index": "embedstore.cli.maintenance:index",
    "demo": "embedstore.cli.demo:demo",
    "check": "embedstore.cli.checks:check",
    "drift": "embedstore.cli.checks:drift",
    "explore": "embedstore.cli.checks:explore",
}


def _available() -> list[str]:
    out = []
    for name, target in COMMANDS.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            out.append(name)
    return out


class LazyGroup(click.Group):
    """A group that imports a command's module only when it is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_available())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None or name not in _available():
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", "store_uri", envvar="EMBEDSTORE_URI", default=None, metavar="URI",
              help="Store URI (local directory, s3://, gs://, az://). Default: $EMBEDSTORE_URI "
                   "or ~/.local/share/embedstore/store.")
@click.option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
              help="LanceDB storage option for object stores (repeatable).")
@click.option("--debug", is_flag=True, envvar="EMBEDSTORE_DEBUG",
              help="Show full Python tracebacks instead of one-line errors (also EMBEDSTORE_DEBUG=1).")
@click.version_option(package_name="embedstore")
@click.pass_context
def cli(ctx: click.Context, store_uri: str | None, storage_options: tuple[str, ...], debug: bool) -> None:
    """Compute-once multimodal embeddings in a versioned LanceDB store.

    \b
    Examples:
      embedstore demo --quick
      embedstore ingest ham10000 --root data/ham10000
      embedstore extract ham10000 --model builtin:efficientnet-lite0 --modality image
      embedstore train ham10000 --image-model builtin:efficientnet-lite0 \\
          --text-model builtin:minilm-l6 --fusion early
    """
    ctx.ensure_object(dict)
    ctx.obj["store_uri"] = store_uri
    ctx.obj["storage_options"] = storage_options
    ctx.obj["debug"] = debug


def main() -> None:  # pragma: no cover - console entry point
    cli(obj={})


if __name__ == "__main__":  # python -m embedstore.cli.main
    main()
