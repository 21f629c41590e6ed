"""``repogen publish`` and the object-storage side of ``repogen build --out s3://...``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from repogen.storage.uri import ENDPOINT_ENV, S3URI, StorageError, is_remote, parse


def add_store_options(p: argparse.ArgumentParser, prune: bool = True) -> None:
    p.add_argument("--endpoint-url", default=None,
                   help=f"S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: ${ENDPOINT_ENV}, else AWS)")
    if prune:
        p.add_argument("--prune", type=int, default=None, metavar="N",
                       help="after publishing, delete remote versions beyond the newest N (default: delete nothing)")


def add_publish_parser(sub: Any) -> None:
    p = sub.add_parser("publish", help="copy a model repository to object storage (s3://bucket/prefix)")
    p.add_argument("repo", help="local model repository folder (with --repair: the s3:// URI)")
    p.add_argument("uri", nargs="?", help="s3://bucket/prefix (or Triton's s3://http://host:port/bucket/prefix)")
    p.add_argument("--repair", action="store_true",
                   help="only clean up what an interrupted publish left under the URI (publish does it too, "
                        "for the models it writes): repogen publish --repair s3://bucket/prefix")
    p.add_argument("--models", help="comma-separated model names (default: all)")
    add_store_options(p)
    p.add_argument("--rollout", action="append", default=[], metavar="HOST:PORT",
                   help="HTTP address of a Triton in --model-control-mode=explicit serving this store: after "
                        "publishing, load each new version there, then unload the old ones (repeatable; servers "
                        "in poll mode need nothing: they pick the new version up on their next poll)")
    p.add_argument("--json", action="store_true")


def _printer(quiet: bool) -> Callable[[str], None]:
    return (lambda msg: None) if quiet else (lambda msg: print(msg, flush=True))


def run_publish(args: Any) -> int:
    from repogen.storage.publish import publish, repair

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    if args.repair:
        if args.uri is not None:
            raise StorageError(f"--repair takes the repository URI alone (got {args.repo} {args.uri})")
        lines = repair(args.repo, endpoint_url=args.endpoint_url, models=models, log=_printer(args.json))
        if args.json:
            print(json.dumps({"ok": True, "uri": args.repo, "repaired": lines}))
        elif not lines:
            print(f"{args.repo}: nothing to repair")
        return 0
    if args.uri is None:
        raise StorageError(f"publish {args.repo}: expected LOCAL_REPO s3://bucket/prefix (or --repair s3://...)")
    report = publish(args.repo, args.uri, endpoint_url=args.endpoint_url, models=models, prune=args.prune,
                     log=_printer(args.json))
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


def store_uri(out: str, endpoint_url: str | None) -> S3URI | None:
    """The parsed URI when ``--out`` names object storage, else None (a local folder)."""
    return parse(out, endpoint_url) if is_remote(out) else None


def with_endpoint(repo: str, endpoint_url: str) -> str:
    """``s3://bucket/prefix`` plus ``--endpoint-url`` as one URI (Triton's form), for validate/serve."""
    if not is_remote(repo):
        raise StorageError(f"--endpoint-url {endpoint_url}: only applies to an s3:// repository, not {repo}")
    return parse(repo, endpoint_url).triton_path()


BUILD_PREFIX = "repogen-publish-"


def build_to_store(build: Callable[[Path], Any], uri: S3URI, *, prune: int | None = None,
                   log: Callable[[str], None] = lambda msg: None) -> Any:
    """``repogen build --out s3://...``: check the bucket first (a typo fails in seconds, not after a long
    build), build into a local temp folder, publish it, remove the temp folder: also on SIGTERM; one left
    by a SIGKILLed build (its lock no longer held) is removed by the next build."""
    from repogen.harness.server import _terminate_raises
    from repogen.storage import client as s3
    from repogen.storage.locks import locked_tempdir, remove_dead_tempdirs
    from repogen.storage.publish import publish

    s3.check_bucket(s3.make_client(uri), uri)
    for path, size in remove_dead_tempdirs(BUILD_PREFIX):
        log(f"removed {path} ({size / 1e6:.1f} MB), left by a build that was killed")
    with _terminate_raises(), locked_tempdir(BUILD_PREFIX) as staging:
        report = build(staging / "repo")
        published = publish(staging / "repo", uri, prune=prune, log=log)
    report.out = uri.text
    for m in report.models:
        m.path = uri.child(m.name).text
    report.published = published.to_dict()  # type: ignore[attr-defined]
    return report
