"""``repogen manifests``: Kubernetes / KServe manifests for Triton serving an s3:// repository."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from repogen.cli.options import at_least
from repogen.errors import ConfigError

HELP = "Kubernetes / KServe manifests for Triton serving an s3:// repository"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("manifests", help=HELP, description=HELP)
    p.add_argument("uri", help="s3://bucket/prefix the cluster reads (see repogen publish)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the YAML files")
    p.add_argument("--endpoint-url", metavar="URL",
                   help="S3-compatible endpoint (default: $AWS_ENDPOINT_URL, else AWS)")
    p.add_argument("--name", default="triton", metavar="NAME",
                   help="Deployment/Service name (a DNS label; default triton)")
    p.add_argument("--namespace", default="default", metavar="NAMESPACE",
                   help="Kubernetes namespace of every object (default default)")
    p.add_argument("--image", metavar="IMAGE",
                   help="tritonserver image (default: the one that serves what the published repository holds: the "
                        "NGC release of its plans' TensorRT, or the CPU image with Paddle for Python-backend models; "
                        "KServe: its tag is runtimeVersion)")
    p.add_argument("--replicas", type=at_least(1), default=1, metavar="N",
                   help="Deployment replicas (the HPA's minimum when --hpa is given; default 1)")
    p.add_argument("--gpus", type=at_least(0), metavar="N",
                   help="nvidia.com/gpu per replica (default: 1 when the repository holds TensorRT plans, else 0)")
    p.add_argument("--cpu", default="4", metavar="QUANTITY", help="CPU request per replica, e.g. 4 or 500m (default 4)")
    p.add_argument("--memory", default="16Gi", metavar="QUANTITY",
                   help="memory request and limit per replica, e.g. 16Gi (default 16Gi)")
    p.add_argument("--control-mode", default="poll", choices=["poll", "explicit", "none"],
                   help="poll: a publish rolls out by itself; explicit: repogen publish --rollout")
    p.add_argument("--poll-secs", type=at_least(1), default=30, metavar="SECONDS",
                   help="how often Triton re-reads the repository in poll mode (default 30)")
    p.add_argument("--secret", default="triton-s3-credentials", metavar="NAME",
                   help="Secret holding AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY ('' for none, e.g. IRSA)")
    p.add_argument("--region", default="us-east-1", metavar="REGION",
                   help="AWS_DEFAULT_REGION of the server (default us-east-1)")
    p.add_argument("--startup-minutes", type=at_least(1), default=10, metavar="MINUTES",
                   help="how long the startup probe allows for loading (default 10)")
    p.add_argument("--hpa", metavar="MIN:MAX", help="add a HorizontalPodAutoscaler on queue time")
    p.add_argument("--hpa-target-us", default="50000", metavar="MICROSECONDS",
                   help="average queue time per request that scales out (default 50000)")
    p.add_argument("--service-monitor", action="store_true", help="add a Prometheus Operator ServiceMonitor")
    p.add_argument("--kserve", action="store_true", help="add a KServe InferenceService")
    p.add_argument("--templates", metavar="DIR", help="folder of templates that replace the built-in ones of the same name")
    p.add_argument("--force", action="store_true", help="replace manifests already in --out")
    p.add_argument("--json", action="store_true", help="print one JSON object listing the files written")


def run(args: argparse.Namespace) -> int:
    from repogen.deploy.manifests import ManifestOptions, check_options, for_repository, repository_manifests, write

    hpa = None
    if args.hpa:
        try:
            lo, hi = (int(x) for x in args.hpa.split(":"))
        except ValueError as exc:
            raise ConfigError(f"--hpa {args.hpa}: expected MIN:MAX, e.g. 1:8") from exc
        hpa = (lo, hi)
    opts = ManifestOptions(name=args.name, namespace=args.namespace, image=args.image, replicas=args.replicas,
                           gpus=args.gpus, cpu=args.cpu, memory=args.memory, control_mode=args.control_mode,
                           poll_secs=args.poll_secs, startup_minutes=args.startup_minutes, secret=args.secret or None,
                           region=args.region, hpa=hpa, hpa_target=args.hpa_target_us,
                           service_monitor=args.service_monitor, kserve=args.kserve,
                           templates=Path(args.templates) if args.templates else None)
    check_options(args.uri, opts)  # before the store is read: a typo fails at once
    if opts.image is None or opts.gpus is None:
        opts = for_repository(opts, repository_manifests(args.uri, args.endpoint_url), args.uri)
    written = write(args.uri, Path(args.out), opts, args.endpoint_url, force=args.force)
    if args.json:
        print(json.dumps({"ok": True, "files": [str(p) for p in written]}))
    else:
        for p in written:
            print(p)
    return 0
