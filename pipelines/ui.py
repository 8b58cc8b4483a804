"""Terminal helpers shared by the commands: progress bars and output."""
from __future__ import annotations

import json
import sys
from typing import Iterable

import click


def progress(items: Iterable, label: str) -> Iterable:
    """A tqdm bar on stderr (silent when stderr is not a terminal and the work is short)."""
    from tqdm.auto import tqdm
    return tqdm(items, desc=label, leave=False, file=sys.stderr, dynamic_ncols=True,
                disable=None, mininterval=0.5)


def step_bar(total: int, label: str):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=label, leave=False, file=sys.stderr, dynamic_ncols=True,
                disable=None, mininterval=0.5)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=float))


def parse_assignments(values: Iterable[str], what: str) -> list[tuple[str, str]]:
    """``MOD=VALUE`` pairs; a usage error names the bad one."""
    out = []
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"'{item}' is not of the form MOD=VALUE", param_hint=what)
        key, value = item.split("=", 1)
        out.append((key.strip(), value))
    return out


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def starting(command: str | None) -> None:
    """Say at once what a command is doing while torch and the plugins load (seconds on a
    small machine); only on a terminal, where a person waits for it."""
    if command and sys.stderr.isatty():
        click.echo(f"polyvae {command}: starting (loading torch and the plugins) ...", err=True)
