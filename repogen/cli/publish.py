"""``repogen publish``: copy a model repository to object storage, optionally rolling servers over to it."""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from repogen.cli.options import add_store_options, comma_list

HELP = "copy a model repository to object storage (s3://bucket/prefix)"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("publish", help=HELP, description=HELP)
    p.add_argument("repo", help="local model repository folder (with --repair: the s3:// URI)")
    p.add_argument("uri", nargs="?", help="s3://bucket/prefix (or Triton's s3://http://host:port/bucket/prefix)")
    p.add_argument("--repair", action="store_true",
                   help="only clean up what an interrupted publish left under the URI (publish does it too, "
                        "for the models it writes): repogen publish --repair s3://bucket/prefix")
    p.add_argument("--models", metavar="NAME[,NAME]", help="comma-separated model names (default: all)")
    add_store_options(p)
    p.add_argument("--rollout", action="append", default=[], metavar="HOST:PORT",
                   help="HTTP address of a Triton in --model-control-mode=explicit serving this store: after "
                        "publishing, load each new version there, then unload the old ones (repeatable; servers "
                        "in poll mode need nothing: they pick the new version up on their next poll)")
    p.add_argument("--json", action="store_true", help="print one JSON object describing what was published")


def printer(quiet: bool) -> Callable[[str], None]:
    """Progress lines for a person, or nothing when a machine reads --json."""
    return (lambda msg: None) if quiet else (lambda msg: print(msg, flush=True))


def run(args: argparse.Namespace) -> int:
    from repogen.storage.publish import publish, repair
    from repogen.storage.uri import StorageError

    if args.repair:
        if args.uri is not None:
            raise StorageError(f"--repair takes the repository URI alone (got {args.repo} {args.uri})")
        lines = repair(args.repo, endpoint_url=args.endpoint_url, models=comma_list(args.models),
                       log=printer(args.json))
        if args.json:
            print(json.dumps({"ok": True, "uri": args.repo, "repaired": lines}))
        elif not lines:
            print(f"{args.repo}: nothing to repair")
        return 0
    if args.uri is None:
        raise StorageError(f"publish {args.repo}: expected LOCAL_REPO s3://bucket/prefix (or --repair s3://...)")
    report = publish(args.repo, args.uri, endpoint_url=args.endpoint_url, models=comma_list(args.models),
                     prune=args.prune, log=printer(args.json))
    rollouts = []
    if args.rollout:
        from repogen.deploy.rollout import load_new_then_unload_old

        for url in args.rollout:
            url = url.split("://", 1)[-1].rstrip("/")
            for m in report.models:
                if m.uploaded_versions:
                    steps = load_new_then_unload_old(url, m.name, max(m.uploaded_versions))
                    rollouts.append({"server": url, "model": m.name, **steps})
                    if not args.json:
                        print(f"{url}: {m.name} served versions {steps['before']} -> {steps['during']} -> "
                              f"{steps['after']}")
    if args.json:
        print(json.dumps(report.to_dict() | {"rollouts": rollouts}))
    else:
        print(f"published to {report.uri} in {report.seconds:.1f} s; tritonserver "
              f"--model-repository={report.triton_path}")
    return 0
