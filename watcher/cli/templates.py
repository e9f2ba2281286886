"""`watcher templates export DIR`: copies of the default templates, to start your own from."""

from __future__ import annotations

import argparse
from pathlib import Path

from watcher.core.errors import ConfigError
from watcher.delivery.channels import DEFAULT_TEMPLATES
from watcher.delivery.templating import FILES


def cmd_export(args: argparse.Namespace) -> int:
    target = Path(args.dir)
    names = [FILES[key] for key in FILES]
    taken = [n for n in names if (target / n).exists()]
    if taken and not args.force:
        raise ConfigError(f"templates export: {target} already has {', '.join(taken)}; "
                          "use --force to overwrite")
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            (target / name).write_bytes((DEFAULT_TEMPLATES / name).read_bytes())
    except OSError as exc:
        raise ConfigError(f"templates export: cannot write to {target}: "
                          f"{exc.strerror or exc}") from None
    print(f"wrote {len(names)} template(s) to {target}:")
    for key, name in FILES.items():
        print(f"  {name}  (channel setting templates.{key})")
    print("point a channel at them: templates: {subject: "
          f"{target / FILES['subject']}, ...}} (paths relative to the config file)")
    return 0
