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
    "info": "cli.store_cmds:info",
    "versions": "cli.store_cmds:versions",
    "tag": "cli.store_cmds:tag",
    "neighbors": "cli.store_cmds:neighbors",
    "export": "cli.store_cmds:export",
    "ingest": "cli.ingest:ingest",
    "extract": "cli.extract:extract",
    "models": "cli.extract:models",
    "backends": "cli.extract:backends",
    "train": "cli.train:train",
    "runs": "cli.train:runs",
    "predict": "cli.predict:predict",
    "export-head": "cli.predict:export_head",
    "train-raw": "cli.raw:train_raw",
    "align": "cli.alignment:align",
    "gap": "cli.alignment:gap",
    "sweep": "cli.alignment:sweep",
    "report": "cli.alignment:report",
    "compact": "cli.maintenance:compact",
    "cleanup": "cli.maintenance:cleanup",
    "doctor": "cli.maintenance:doctor",
    "upgrade": "cli.maintenance:upgrade",
    "repair": "cli.maintenance:repair",
    "demo": "cli.demo:demo",
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
